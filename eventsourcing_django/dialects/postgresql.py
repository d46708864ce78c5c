"""PostgreSQL: LOCK TABLE per table and schema, NOTIFY, unnest for big batches."""

from __future__ import annotations

import select
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import utils as django_errors

from eventsourcing_django.dialects.base import (
    TABLE_COMMENT_PREFIX,
    Dialect,
    OneQueryInsert,
)
from eventsourcing_django.dialects.dcb import DCBStatements, Row, Statement

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper
    from eventsourcing.persistence import StoredEvent

    from eventsourcing_django.vocabulary import Kind


class PostgresDialect(Dialect):
    vendor = "postgresql"
    display_name = "PostgreSQL"
    supports_schemas = True
    can_listen = True
    # NOTIFY wakes subscriptions; polling only covers a notification lost
    # while the listening connection was being set up or reconnected, or by a
    # writer that failed between its commit and its NOTIFY (sent after commit).
    poll_interval = 1.0

    def __init__(self, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        #: psycopg 3's client-side binding cursor; None with psycopg2.
        self._client_cursor: type | None = None
        #: The driver's errors that can mean a lost connection (the listening
        #: thread of a subscription sees them unwrapped).
        driver: Any = getattr(connection, "Database")  # noqa: B009 (not typed)
        self._driver_connection_errors: tuple[type[BaseException], ...] = (
            driver.OperationalError,
            driver.InterfaceError,
        )
        if is_psycopg3:
            import psycopg

            self._client_cursor = psycopg.ClientCursor

    _STORAGE = (
        " WITH (autovacuum_enabled = true,"
        " autovacuum_vacuum_threshold = 100000000,"
        " autovacuum_vacuum_scale_factor = 0.5,"
        " autovacuum_analyze_threshold = 1000,"
        " autovacuum_analyze_scale_factor = 0.01)"
    )

    def create_schema_statements(self) -> list[str]:
        if self.schema is None:
            return []
        return [f"CREATE SCHEMA IF NOT EXISTS {self.quote(self.schema)}"]

    def create_table_statements(self, kind: Kind, table: str) -> list[str]:
        # The same DDL as eventsourcing.postgres, so the two can share tables,
        # and a comment that tells our tables from others (django-tenants copies
        # it when it clones a schema: see tenants.py).
        t = self.qualify(table)
        comment = f"COMMENT ON TABLE {t} IS '{TABLE_COMMENT_PREFIX}{kind}'"
        if kind == "dcb":
            # The position is the key; reads by type alone use (type, position).
            index = self.quote(f"{table}_type")
            return [
                f"CREATE TABLE IF NOT EXISTS {t} (position bigserial PRIMARY KEY, "
                "type text NOT NULL, data bytea NOT NULL, tags text NOT NULL)"
                + self._STORAGE,
                f"CREATE INDEX IF NOT EXISTS {index} ON {t} (type, position)",
                comment,
            ]
        if kind == "dcb_tags":
            return [
                f"CREATE TABLE IF NOT EXISTS {t} (tag text NOT NULL, "
                "position bigint NOT NULL, PRIMARY KEY (tag, position))"
                + self._STORAGE,
                comment,
            ]
        if kind == "tracking":
            return [
                f"CREATE TABLE IF NOT EXISTS {t} (application_name text, "
                "notification_id bigint, PRIMARY KEY (application_name))"
                + self._STORAGE,
                *self._tracking_marker(t),
                comment,
            ]
        id_type = self.originator_id_type
        notification_id = "notification_id bigserial, " if kind == "events" else ""
        statements = [
            f"CREATE TABLE IF NOT EXISTS {t} (originator_id {id_type} NOT NULL, "
            "originator_version bigint NOT NULL, topic text, state bytea, "
            f"{notification_id}PRIMARY KEY (originator_id, originator_version))"
            + self._STORAGE
        ]
        if kind == "events":
            index = self.quote(f"{table}_notification_id_idx")
            statements.append(
                f"CREATE UNIQUE INDEX IF NOT EXISTS {index} "
                f"ON {t} (notification_id ASC)"
            )
        statements.append(comment)
        return statements

    @staticmethod
    def _tracking_marker(qualified: str) -> list[str]:
        # eventsourcing.postgres marks its single-row tracking tables with this
        # row; without it, it would migrate (rename) our table.
        return [
            f"INSERT INTO {qualified} VALUES ('__migration__', 1) "
            "ON CONFLICT (application_name) DO NOTHING"
        ]

    def truncate_table_statements(self, table: str) -> list[tuple[str, list[Any]]]:
        t = self.qualify(table)
        return [
            (f"TRUNCATE {t}", []),
            # The notification IDs start at 1 again (a schema cloned by
            # django-tenants has its sequence set from the template's).
            (
                "SELECT setval(pg_get_serial_sequence(%s, attname), 1, false) "
                "FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                "AND attname IN ('notification_id', 'position') "
                "AND pg_get_serial_sequence(%s, attname) IS NOT NULL",
                [t, t, t],
            ),
        ]

    def reset_statements(self, kind: Kind, table: str) -> list[tuple[str, list[Any]]]:
        if kind == "tracking":
            t = self.qualify(table)
            return [(f"TRUNCATE {t}", []), *((s, []) for s in self._tracking_marker(t))]
        return self.truncate_table_statements(table)

    def marked_tables(self, cursor: CursorWrapper) -> list[tuple[Kind, str]]:
        cursor.execute(
            "SELECT obj_description(c.oid, 'pg_class'), c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' "
            "AND obj_description(c.oid, 'pg_class') LIKE %s",
            [self.schema, TABLE_COMMENT_PREFIX + "%"],
        )
        kinds = {"events", "snapshots", "tracking", "dcb", "dcb_tags"}
        found: list[tuple[Kind, str]] = []
        for comment, table in cursor.fetchall():
            kind = comment[len(TABLE_COMMENT_PREFIX) :]
            if kind in kinds:
                found.append((kind, table))
        return found

    def table_exists(self, cursor: CursorWrapper, table: str) -> bool:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [self.qualify(table)])
        row = cursor.fetchone()
        return bool(row and row[0])

    def serialize_ddl(self, cursor: CursorWrapper, table: str) -> None:
        # Two sessions running CREATE TABLE IF NOT EXISTS at once can both decide
        # to create it and one fails on a duplicate key in pg_type; the same goes
        # for CREATE SCHEMA IF NOT EXISTS and pg_namespace. Always the schema's
        # lock first, so two creators cannot wait for each other.
        keys = [self.qualify(table)]
        if self.schema is not None:
            keys.insert(0, f"schema {self.quote(self.schema)}")
        for key in keys:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                [f"eventsourcing_django:{key}"],
            )

    #: Up to this many rows an insert lists them in VALUES; beyond, it sends four
    #: arrays, unnested into rows. Drivers that bind client-side quote and the
    #: server parses short VALUES lists faster than arrays (bytea arrays above
    #: all), and long ones slower.
    max_values_rows: ClassVar[int] = 32

    def insert_statement_key(self, count: int) -> int:
        return count if count <= self.max_values_rows else 0

    def insert_events_statement(
        self, table: str, *, count: int, returning: bool
    ) -> str:
        if count <= self.max_values_rows:
            return super().insert_events_statement(
                table, count=count, returning=returning
            )
        # One statement for any larger batch: four arrays, unnested into rows.
        id_type = self.originator_id_type
        statement = (
            f"INSERT INTO {self.qualify(table)} "
            "(originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest("
            f"%s::{id_type}[], %s::bigint[], %s::text[], %s::bytea[])"
        )
        if returning:
            statement += " RETURNING notification_id"
        return statement

    def insert_events_params(self, stored_events: Sequence[StoredEvent]) -> list[Any]:
        if len(stored_events) <= self.max_values_rows:
            return super().insert_events_params(stored_events)
        return [
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
        ]

    def lock_table_statements(self, table: str, lock_timeout: float) -> list[str]:
        # An EXCLUSIVE lock lets readers in but makes writers of this table take
        # turns, so the IDs of one transaction are contiguous and commit in order.
        # It is per table and per schema: other applications never wait for it.
        return [
            f"SET LOCAL lock_timeout = '{int(lock_timeout * 1000)}ms'",
            f"LOCK TABLE {self.qualify(table)} IN EXCLUSIVE MODE",
        ]

    def dcb_statements(
        self, events_table: str, tags_table: str, lock_timeout: float
    ) -> DCBStatements:
        return PostgresDCBStatements(self, events_table, tags_table, lock_timeout)

    def notify_statement(self, channel: str) -> str | None:
        return f"NOTIFY {self.quote(channel)}"

    def sends_many_statements(self, raw_connection: Any) -> bool:
        # psycopg2 always binds client-side; psycopg 3 does with Django's default
        # cursor (a ClientCursor), not with OPTIONS "server_side_binding".
        if self._client_cursor is None:
            return True
        factory = getattr(raw_connection, "cursor_factory", None)
        return isinstance(factory, type) and issubclass(factory, self._client_cursor)

    def to_last_result(self, raw_cursor: Any) -> None:
        if self._client_cursor is not None:
            # psycopg 3 starts at the first result (psycopg2 keeps only the last);
            # nextset() leaves the cursor on the last result when none is left.
            while raw_cursor.nextset():
                pass

    def one_query_insert(
        self, table: str, lock_statements: Sequence[str]
    ) -> OneQueryInsert | None:
        if not lock_statements:
            return None
        # Flat on purpose: this is the whole of an insert's Python on the short
        # path, between the checks and the round trip, and every function and
        # object it touches costs a memory fetch on a cold cache (docs/profile.md).
        prefix = "".join(f"{s}; " for s in lock_statements)
        max_values_rows = self.max_values_rows
        unnest = prefix + self.insert_events_statement(
            table, count=max_values_rows + 1, returning=True
        )
        listed: dict[int, str] = {}
        # psycopg 3 starts at the first result (psycopg2 keeps only the last).
        to_last_result = self._client_cursor is not None

        def insert(cursor: Any, stored_events: Sequence[StoredEvent]) -> list[int]:
            count = len(stored_events)
            if count <= max_values_rows:
                statement = listed.get(count)
                if statement is None:
                    statement = listed[count] = prefix + self.insert_events_statement(
                        table, count=count, returning=True
                    )
                # As insert_events_params (PostgreSQL takes originator IDs as
                # they are), in place.
                params: list[Any] = []
                for e in stored_events:
                    params += (e.originator_id, e.originator_version, e.topic, e.state)
            else:
                statement = unnest
                params = self.insert_events_params(stored_events)
            cursor.execute(statement, params)
            if to_last_result:
                # As to_last_result, in place: nextset() leaves the cursor on
                # the last result when none is left.
                while cursor.nextset():
                    pass
            # IDs are issued in insert order; rows may come back in any order.
            return sorted([row[0] for row in cursor.fetchall()])

        return insert

    def listen_statement(self, channel: str) -> str:
        return f"LISTEN {self.quote(channel)}"

    @staticmethod
    def wait_for_notify(raw: Any, timeout: float) -> bool:
        """Wait on the driver connection ``raw``; True if a notification came."""
        if hasattr(raw, "notifies") and callable(raw.notifies):  # psycopg 3
            return any(True for _ in raw.notifies(timeout=timeout, stop_after=1))
        # psycopg2
        if select.select([raw], [], [], timeout) == ([], [], []):
            return False
        raw.poll()
        arrived = bool(raw.notifies)
        raw.notifies.clear()
        return arrived

    @staticmethod
    def is_missing_table(exc: BaseException) -> bool:
        cause = exc.__cause__ or exc
        code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        return code == "42P01"

    #: SQLSTATEs of a session the server ended or would not start:
    #: admin_shutdown (fast shutdown, pg_terminate_backend), crash_shutdown,
    #: cannot_connect_now (starting up, shutting down, in recovery).
    _DISCONNECT_STATES = frozenset({"57P01", "57P02", "57P03"})

    def is_connection_error(self, exc: BaseException) -> bool:
        cause = exc.__cause__ if isinstance(exc, django_errors.Error) else exc
        if isinstance(exc, django_errors.InterfaceError):
            return True  # "connection already closed" and the like
        if not isinstance(exc, django_errors.OperationalError) and not isinstance(
            cause, self._driver_connection_errors
        ):
            return False
        code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        # The server's own errors carry a SQLSTATE (a lock timeout is 55P03, a
        # deadlock 40P01: the connection is fine). Errors the client raises when
        # the socket breaks or a connection fails carry none, or class 08.
        return code is None or code.startswith("08") or code in self._DISCONNECT_STATES

    def is_closed(self, connection: BaseDatabaseWrapper) -> bool:
        # psycopg 3: a bool, true when closed or broken; psycopg2: 0 while open.
        raw = connection.connection
        return raw is not None and bool(getattr(raw, "closed", False))

    def is_bad_value(self, exc: BaseException) -> bool:
        # psycopg2 quotes parameters on the client, and refuses a NUL there
        # with a bare ValueError that Django does not wrap; psycopg 3 sends the
        # value and gets a DataError back.
        return (
            self._client_cursor is None
            and type(exc) is ValueError
            and "NUL (0x00)" in str(exc)
        )


class PostgresDCBStatements(DCBStatements):
    """Condition and both inserts in one statement, after the table lock.

    The events go as three arrays, unnested into rows in order; the tags rows
    are made on the server from the JSON of the rows just inserted. The
    statement's snapshot is taken after LOCK TABLE: no writer can come between
    the check and the insert.
    """

    appends_in_one_statement = True

    def __init__(self, dialect: Dialect, events_table: str, *args: Any) -> None:
        super().__init__(dialect, events_table, *args)
        channel = dialect.quote(dialect.channel_name(events_table))
        # NOTIFY in the append's transaction, as eventsourcing.dcb.postgres_tt
        # does: after the commit, it would cost a round trip per append (see
        # docs/decisions.md, issue 14). Delivered at commit only.
        self.lock_statements = [*self.lock_statements, f"NOTIFY {channel}"]

    def append(self, rows: Sequence[Row], conflicts: Statement | None) -> Statement:
        unless = "" if conflicts is None else f" WHERE NOT EXISTS ({conflicts[0]})"
        statement = (
            "WITH new AS (SELECT * FROM unnest(%s::text[], %s::bytea[], %s::text[]) "
            f"WITH ORDINALITY AS n (type, data, tags, i){unless}), "
            f"ins AS (INSERT INTO {self.events} (type, data, tags) "
            "SELECT type, data, tags FROM new ORDER BY i RETURNING position, tags), "
            f"tagged AS (INSERT INTO {self.tags} (tag, position) "
            "SELECT DISTINCT j.tag, ins.position FROM ins, "
            "json_array_elements_text(ins.tags::json) AS j (tag)) "
            "SELECT MAX(position) FROM ins"
        )
        params: list[Any] = [
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
        ]
        if conflicts is not None:
            params += conflicts[1]
        return statement, params
