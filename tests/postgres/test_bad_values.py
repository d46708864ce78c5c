"""PostgreSQL: names and values it would refuse are refused as the library's
errors, by both drivers, before any harm is done."""

from __future__ import annotations

from uuid import uuid4

from django.db import connections
from django.test.utils import CaptureQueriesContext
from eventsourcing.application import Application
from eventsourcing.persistence import DataError, StoredEvent

from eventsourcing_django.recorders import DjangoApplicationRecorder
from eventsourcing_django.tables import InvalidSchemaNameError
from tests.base import DjangoDBTestCase

ENV = {"PERSISTENCE_MODULE": "eventsourcing_django"}


class TestReservedSchemas(DjangoDBTestCase):
    def test_an_application_pinned_to_a_pg_schema_fails_before_any_sql(self) -> None:
        class Universe(Application):
            pass

        for schema in ("pg_catalog", "pg_es"):
            with (
                CaptureQueriesContext(connections["default"]) as queries,
                self.assertRaises(InvalidSchemaNameError) as info,
            ):
                Universe(env={**ENV, "DJANGO_SCHEMA": schema})
            self.assertIn("PostgreSQL reserves", str(info.exception))
            self.assertEqual(len(queries), 0)


class TestBadValues(DjangoDBTestCase):
    def test_a_nul_in_a_topic_is_the_librarys_data_error_with_either_driver(
        self,
    ) -> None:
        recorder = DjangoApplicationRecorder("Nul")
        recorder.create_table()
        bad = StoredEvent(uuid4(), 1, "topic\x00with a NUL", b"state")
        # With psycopg2 a bare ValueError from quoting on the client, with
        # psycopg 3 the server's DataError: code catching PersistenceError
        # sees both, and nothing is written.
        with self.assertRaises(DataError):
            recorder.insert_events([bad])
        with self.assertRaises(DataError):
            recorder.select_notifications(0, 10, topics=["a\x00b"])
        self.assertEqual(recorder.max_notification_id(), None)
        # The connection is still good for the next write.
        recorder.insert_events([StoredEvent(uuid4(), 1, "topic", b"state")])
        self.assertEqual(recorder.max_notification_id(), 1)
