"""The limit of our design on PostgreSQL: our statements, sent by psycopg alone.

``LimitRecorder`` sends exactly what ``eventsourcing_django``'s application
recorder sends outside a caller's transaction, on a dedicated psycopg 3
connection in autocommit mode with client-side binding (so several statements
go as one simple-protocol query), with nothing in between: no Django, no error
translation, no retries, no thread rules. An insert of up to
``max_insert_rows`` events is one query, ``SET LOCAL lock_timeout; LOCK TABLE;
INSERT ... RETURNING``, then ``NOTIFY``, as ours; reads are one query each.
bench.py runs it as the third side on PostgreSQL ("limit"), built through
``PERSISTENCE_MODULE=bench_limit:LimitFactory`` with the ``LIMIT_DSN`` env key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    Notification,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    TrackingRecorder,
)
from eventsourcing.utils import Environment, EnvType

from eventsourcing_django.dialects.postgresql import PostgresDialect

#: As eventsourcing_django's PostgresDialect: up to this many rows in VALUES,
#: beyond as four unnested arrays.
MAX_VALUES_ROWS = 32


class LimitRecorder(ApplicationRecorder):
    def __init__(self, dsn: str, application_name: str) -> None:
        self.connection = psycopg.connect(
            dsn, autocommit=True, cursor_factory=psycopg.ClientCursor
        )
        self.table = f"{application_name.lower()}_events"
        t = f'"{self.table}"'
        self.lock_prefix = (
            f"SET LOCAL lock_timeout = '0ms'; LOCK TABLE {t} IN EXCLUSIVE MODE; "
        )
        self.insert_prefix = (
            f"INSERT INTO {t} (originator_id, originator_version, topic, state) "
        )
        self.unnest = (
            self.lock_prefix
            + self.insert_prefix
            + "SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], "
            "%s::bytea[]) RETURNING notification_id"
        )
        self.values: dict[int, str] = {}
        self.notify = f'NOTIFY "{self.table}"'
        self.select_events_statement = (
            "SELECT originator_id, originator_version, topic, state "
            f"FROM {t} WHERE originator_id = %s ORDER BY originator_version ASC"
        )
        self.select_notifications_statement = (
            "SELECT notification_id, originator_id, originator_version, topic, "
            f"state FROM {t} WHERE notification_id >= %s "
            "ORDER BY notification_id LIMIT %s"
        )

    def create_table(self) -> None:
        # Our tables, storage parameters included (they decide how often
        # autovacuum analyzes the table while it grows).
        t = f'"{self.table}"'
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {t} (originator_id uuid NOT NULL, "
                "originator_version bigint NOT NULL, topic text, state bytea, "
                "notification_id bigserial, "
                "PRIMARY KEY (originator_id, originator_version))"
                + PostgresDialect._STORAGE
            )
            cursor.execute(
                f'CREATE UNIQUE INDEX IF NOT EXISTS "{self.table}_nid_idx" '
                f"ON {t} (notification_id ASC)"
            )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        count = len(stored_events)
        if count <= MAX_VALUES_ROWS:
            statement = self.values.get(count)
            if statement is None:
                statement = self.values[count] = (
                    self.lock_prefix
                    + self.insert_prefix
                    + "VALUES "
                    + ", ".join(["(%s, %s, %s, %s)"] * count)
                    + " RETURNING notification_id"
                )
            params: list[Any] = []
            for e in stored_events:
                params += (e.originator_id, e.originator_version, e.topic, e.state)
        else:
            statement = self.unnest
            params = [
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ]
        with self.connection.cursor() as cursor:
            cursor.execute(statement, params)
            while cursor.nextset():
                pass
            ids = sorted(row[0] for row in cursor.fetchall())
            cursor.execute(self.notify)
        return ids

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        if gt is not None or lte is not None or desc or limit is not None:
            raise NotImplementedError("the benchmark reads whole aggregates")
        with self.connection.cursor() as cursor:
            cursor.execute(self.select_events_statement, [originator_id])
            return [
                StoredEvent(
                    originator_id=row[0],
                    originator_version=row[1],
                    topic=row[2],
                    state=row[3],
                )
                for row in cursor.fetchall()
            ]

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        if stop is not None or topics or not inclusive_of_start:
            raise NotImplementedError("the benchmark reads pages from a start")
        with self.connection.cursor() as cursor:
            cursor.execute(self.select_notifications_statement, [start or 1, limit])
            return [
                Notification(
                    id=row[0],
                    originator_id=row[1],
                    originator_version=row[2],
                    topic=row[3],
                    state=row[4],
                )
                for row in cursor.fetchall()
            ]

    def max_notification_id(self) -> int | None:
        with self.connection.cursor() as cursor:
            cursor.execute(f'SELECT MAX(notification_id) FROM "{self.table}"')
            row = cursor.fetchone()
        return None if row is None else row[0]

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        raise NotImplementedError

    def close(self) -> None:
        self.connection.close()


class LimitFactory(InfrastructureFactory[TrackingRecorder]):
    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        self.recorders: list[LimitRecorder] = []

    def application_recorder(self) -> ApplicationRecorder:
        recorder = LimitRecorder(self.env["LIMIT_DSN"], self.env.name)
        if (self.env.get("CREATE_TABLE") or "yes").lower() not in ("no", "n", "0"):
            recorder.create_table()
        self.recorders.append(recorder)
        return recorder

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        raise NotImplementedError

    def tracking_recorder(
        self, tracking_recorder_class: type[TrackingRecorder] | None = None
    ) -> TrackingRecorder:
        raise NotImplementedError

    def process_recorder(self) -> ProcessRecorder:
        raise NotImplementedError

    def close(self) -> None:
        for recorder in self.recorders:
            recorder.close()
        super().close()
