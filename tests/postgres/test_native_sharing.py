"""PostgreSQL: tables shared with eventsourcing.postgres (which needs psycopg 3)."""

from __future__ import annotations

from uuid import uuid4

from django.db import connections
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import (
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresTrackingRecorder,
)

from eventsourcing_django.recorders import (
    DjangoApplicationRecorder,
    DjangoTrackingRecorder,
)
from tests.base import DjangoDBTestCase


def events(n: int = 1) -> list[StoredEvent]:
    originator_id = uuid4()
    return [StoredEvent(originator_id, v, "topic", b"state") for v in range(1, n + 1)]


def native_datastore() -> PostgresDatastore:
    settings = connections["default"].settings_dict
    return PostgresDatastore(
        dbname=settings["NAME"],
        host=settings["HOST"],
        port=settings["PORT"],
        user=settings["USER"],
        password=settings["PASSWORD"],
    )


def columns(table: str) -> list[tuple[str, str, str]]:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type, is_nullable "
            "FROM information_schema.columns "
            "WHERE table_name = %s ORDER BY ordinal_position",
            [table],
        )
        return list(cursor.fetchall())


class TestSharedWithEventsourcingPostgres(DjangoDBTestCase):
    def test_columns_and_types_are_those_of_eventsourcing_postgres(self) -> None:
        datastore = native_datastore()
        try:
            native = PostgresApplicationRecorder(
                datastore, events_table_name="native_events"
            )
            native.create_table()
            ours = DjangoApplicationRecorder("Ours")
            ours.create_table()
            self.assertEqual(columns("ours_events"), columns("native_events"))
            native_tracking = PostgresTrackingRecorder(
                datastore, tracking_table_name="native_tracking"
            )
            native_tracking.create_table()
            DjangoTrackingRecorder("Ours").create_table()
            self.assertEqual(columns("ours_tracking"), columns("native_tracking"))
        finally:
            datastore.close()

    def test_a_native_process_reads_and_continues_our_log(self) -> None:
        ours = DjangoApplicationRecorder("Shared")
        ours.create_table()
        written = events(2)
        self.assertEqual(ours.insert_events(written), [1, 2])
        datastore = native_datastore()
        try:
            native = PostgresApplicationRecorder(
                datastore, events_table_name="shared_events"
            )
            native.create_table()
            self.assertEqual(native.select_events(written[0].originator_id), written)
            self.assertEqual(native.insert_events(events(1)), [3])
        finally:
            datastore.close()
        self.assertEqual([n.id for n in ours.select_notifications(None, 10)], [1, 2, 3])
