"""What differs between database vendors, in one place.

A :class:`Dialect` composes the SQL of one application table on one database alias:
its DDL, the insert that returns notification IDs, the lock that keeps those IDs
contiguous, and how a missing table shows itself. Recorders compose their statements
once, through a dialect, and never ask which vendor they run on.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import select
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from django.db import utils as django_errors
from eventsourcing.persistence import NotSupportedError

from eventsourcing_django.tables import MAX_IDENTIFIER_BYTES

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper
    from eventsourcing.persistence import StoredEvent

    from eventsourcing_django.builder import Kind, OriginatorIDType


#: Our tables' comments start with this, followed by their kind.
TABLE_COMMENT_PREFIX = "eventsourcing_django:"


class Dialect:
    """SQL for one vendor; subclasses fill in what differs."""

    vendor: ClassVar[str]
    #: Whether tables can be pinned to a schema (else a pinned application is
    #: refused, by the dialect and by system check E007).
    supports_schemas: ClassVar[bool] = False
    #: Whether LISTEN/NOTIFY can wake subscriptions (else they poll).
    can_listen: ClassVar[bool] = False
    #: Seconds between polls of a subscription that has not been woken.
    poll_interval: ClassVar[float] = 0.1

    def __init__(
        self,
        connection: BaseDatabaseWrapper,
        *,
        schema: str | None,
        originator_id_type: OriginatorIDType = "uuid",
    ) -> None:
        self.alias = connection.alias
        self.quote = connection.ops.quote_name
        self.schema = schema
        self.originator_id_type = originator_id_type

    def qualify(self, table: str) -> str:
        """The quoted, schema-qualified name of ``table``."""
        if self.schema is None:
            return self.quote(table)
        return f"{self.quote(self.schema)}.{self.quote(table)}"

    # DDL ---------------------------------------------------------------------

    def create_schema_statements(self) -> list[str]:
        """Statements that make the schema the tables are pinned to, if missing."""
        return []

    def create_table_statements(self, kind: Kind, table: str) -> list[str]:
        raise NotImplementedError

    def drop_table_statements(self, table: str) -> list[str]:
        return [f"DROP TABLE IF EXISTS {self.qualify(table)}"]

    def truncate_table_statements(self, table: str) -> list[tuple[str, list[Any]]]:
        """Delete every row and restart the table's notification IDs at 1."""
        raise NotImplementedError

    def reset_statements(self, kind: Kind, table: str) -> list[tuple[str, list[Any]]]:
        """Empty ``table`` as when it was created (IDs from 1, markers kept)."""
        return self.truncate_table_statements(table)

    def marked_tables(self, cursor: CursorWrapper) -> list[tuple[Kind, str]]:
        """Our tables in this dialect's schema, as their comments tell."""
        raise NotSupportedError(f"{self.vendor} has no table comments to read")

    def table_exists(self, cursor: CursorWrapper, table: str) -> bool:
        raise NotImplementedError

    def serialize_ddl(self, cursor: CursorWrapper, table: str) -> None:
        """Make concurrent creators of ``table`` wait for each other."""

    # DML ---------------------------------------------------------------------

    #: The most rows one insert statement may carry (bound by parameter limits).
    max_insert_rows: ClassVar[int] = 100_000

    def insert_statement_key(self, count: int) -> int:
        """What identifies the insert statement of ``count`` rows among others.

        Statements that list their rows differ by count; 0 stands for a
        statement that takes any number of rows.
        """
        return count

    def insert_events_statement(
        self, table: str, *, count: int, returning: bool
    ) -> str:
        """A statement that inserts ``count`` stored events into ``table``."""
        values = ", ".join(["(%s, %s, %s, %s)"] * count)
        statement = (
            f"INSERT INTO {self.qualify(table)} "
            f"(originator_id, originator_version, topic, state) VALUES {values}"
        )
        if returning:
            statement += " RETURNING notification_id"
        return statement

    def insert_events_params(self, stored_events: Sequence[StoredEvent]) -> list[Any]:
        """The parameters of :meth:`insert_events_statement`, in order."""
        params: list[Any] = []
        adapt = self.adapt_originator_id
        for e in stored_events:
            params += (adapt(e.originator_id), e.originator_version, e.topic, e.state)
        return params

    def lock_table_statements(self, table: str, lock_timeout: float) -> list[str]:
        """Statements that serialize inserts into ``table`` inside a transaction."""
        return []

    def notify_statement(self, channel: str) -> str | None:
        return None

    def sends_many_statements(self, raw_connection: Any) -> bool:
        """Whether one execute on ``raw_connection`` may carry several statements.

        Drivers that merge parameters into the SQL send it with the simple query
        protocol, which runs statements separated by semicolons in one round trip,
        and outside a transaction as one implicit transaction.
        """
        return False

    def to_last_result(self, raw_cursor: Any) -> None:
        """Move ``raw_cursor`` to the result of the last statement it executed."""

    def listen_statement(self, channel: str) -> str:
        raise NotImplementedError

    @staticmethod
    def wait_for_notify(raw: Any, timeout: float) -> bool:
        raise NotImplementedError

    def advance_tracking(
        self, cursor: CursorWrapper, statement: str, name: str, notification_id: int
    ) -> bool:
        """Run ``statement`` (from :meth:`insert_tracking_statement`); return
        whether the tracking of ``name`` advanced to ``notification_id``."""
        cursor.execute(statement, [name, notification_id])
        return cursor.fetchone() is not None

    def insert_tracking_statement(self, table: str) -> str:
        # Only ever advance: a lower or equal ID leaves the row alone and returns
        # nothing, which the recorder reports as an IntegrityError.
        t = self.qualify(table)
        return (
            f"INSERT INTO {t} (application_name, notification_id) VALUES (%s, %s) "
            "ON CONFLICT (application_name) DO UPDATE "
            "SET notification_id = EXCLUDED.notification_id "
            f"WHERE {t}.notification_id < EXCLUDED.notification_id "
            "RETURNING notification_id"
        )

    def adapt_originator_id(self, originator_id: UUID | str) -> Any:
        return originator_id

    def convert_originator_id(self, value: Any) -> UUID | str:
        return value  # type: ignore[no-any-return]

    @staticmethod
    def is_missing_table(exc: BaseException) -> bool:
        raise NotImplementedError

    def is_connection_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` (Django's or the driver's) means the connection is
        gone or could not be made, so that it must be discarded (see retry.py).

        A file database has no server to lose: by default, never.
        """
        return False

    def is_closed(self, connection: BaseDatabaseWrapper) -> bool:
        """Whether the driver already knows ``connection`` to be closed or broken
        (without a round trip)."""
        return False

    def is_bad_value(self, exc: BaseException) -> bool:
        """Whether ``exc``, not wrapped by Django, is the driver refusing a value
        on the client side (raised as the library's ``DataError``)."""
        return False

    def write_lock(self) -> contextlib.AbstractContextManager[None]:
        """A lock held around write transactions in this process."""
        return contextlib.nullcontext()

    def channel_name(self, table: str) -> str:
        """A LISTEN/NOTIFY channel for ``table``, distinct per schema."""
        name = f"{self.schema}.{table}" if self.schema else table
        if len(name.encode()) <= MAX_IDENTIFIER_BYTES:
            return name
        digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:16]
        return f"{table[: MAX_IDENTIFIER_BYTES - 17]}_{digest}"


class PostgresDialect(Dialect):
    vendor = "postgresql"
    supports_schemas = True
    can_listen = True
    # NOTIFY wakes subscriptions; polling only covers a notification lost
    # while the listening connection was being set up or reconnected, or by a
    # writer that failed between its commit and its NOTIFY (sent after commit).
    poll_interval = 1.0

    def __init__(
        self,
        connection: BaseDatabaseWrapper,
        *,
        schema: str | None,
        originator_id_type: OriginatorIDType = "uuid",
    ) -> None:
        super().__init__(
            connection, schema=schema, originator_id_type=originator_id_type
        )
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
                "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), "
                "1, false) FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                "AND attname = 'notification_id'",
                [t, t],
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
        kinds = {"events", "snapshots", "tracking"}
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

    def convert_originator_id(self, value: Any) -> UUID | str:
        return value  # type: ignore[no-any-return]

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


_sqlite_write_locks: dict[str, threading.RLock] = {}
_sqlite_write_locks_guard = threading.Lock()


class SQLiteDialect(Dialect):
    vendor = "sqlite"

    def __init__(
        self,
        connection: BaseDatabaseWrapper,
        *,
        schema: str | None,
        originator_id_type: OriginatorIDType = "uuid",
    ) -> None:
        if schema is not None:
            msg = f"SQLite has no schemas: cannot pin tables to schema {schema!r}"
            raise NotSupportedError(msg)
        super().__init__(
            connection, schema=schema, originator_id_type=originator_id_type
        )
        name = str(connection.settings_dict["NAME"])
        with _sqlite_write_locks_guard:
            self._write_lock = _sqlite_write_locks.setdefault(name, threading.RLock())

    def create_table_statements(self, kind: Kind, table: str) -> list[str]:
        t = self.qualify(table)
        if kind == "tracking":
            return [
                f"CREATE TABLE IF NOT EXISTS {t} (application_name TEXT NOT NULL "
                "PRIMARY KEY, notification_id INTEGER NOT NULL)"
            ]
        if kind == "events":
            # SQLite can only number rows through the primary key, so the
            # notification ID is the key and the aggregate sequence is unique.
            index = self.quote(f"{table}_aggregate_idx")
            return [
                f"CREATE TABLE IF NOT EXISTS {t} (notification_id INTEGER NOT NULL "
                "PRIMARY KEY AUTOINCREMENT, originator_id TEXT NOT NULL, "
                "originator_version INTEGER NOT NULL, topic TEXT NOT NULL, "
                "state BLOB NOT NULL)",
                f"CREATE UNIQUE INDEX IF NOT EXISTS {index} "
                f"ON {t} (originator_id, originator_version)",
            ]
        return [
            f"CREATE TABLE IF NOT EXISTS {t} (originator_id TEXT NOT NULL, "
            "originator_version INTEGER NOT NULL, topic TEXT NOT NULL, "
            "state BLOB NOT NULL, PRIMARY KEY (originator_id, originator_version)) "
            "WITHOUT ROWID"
        ]

    def truncate_table_statements(self, table: str) -> list[tuple[str, list[Any]]]:
        statements: list[tuple[str, list[Any]]] = [
            (f"DELETE FROM {self.qualify(table)}", [])
        ]
        # AUTOINCREMENT keeps its high-water mark in sqlite_sequence.
        statements.append(
            (
                "DELETE FROM sqlite_sequence WHERE name = %s AND EXISTS "
                "(SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence')",
                [table],
            )
        )
        return statements

    def table_exists(self, cursor: CursorWrapper, table: str) -> bool:
        cursor.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = %s", [table]
        )
        return cursor.fetchone() is not None

    # 4 parameters a row, and SQLite allows 32766 parameters a statement.
    max_insert_rows = 1000

    def adapt_originator_id(self, originator_id: UUID | str) -> Any:
        # Django's UUIDField keeps 32 hex digits on SQLite; so does the library.
        return originator_id.hex if isinstance(originator_id, UUID) else originator_id

    def convert_originator_id(self, value: Any) -> UUID | str:
        return UUID(value) if self.originator_id_type == "uuid" else value

    @staticmethod
    def is_missing_table(exc: BaseException) -> bool:
        return str(exc).startswith("no such table")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._write_lock:
            yield

    def write_lock(self) -> contextlib.AbstractContextManager[None]:
        # SQLite has one writer at a time per file; waiting here instead of in
        # its busy handler keeps threads of this process from timing out.
        return self._locked()


#: One row per events table of a MariaDB database; a writer locks its table's row
#: until it commits (see MySQLDialect.lock_table_statements).
MYSQL_LOCK_TABLE = "eventsourcing_django_locks"


class MySQLDialect(Dialect):
    """MariaDB 10.6+ through Django's ``mysql`` backend (mysqlclient).

    No schemas (a database is MariaDB's schema), no LISTEN/NOTIFY (subscriptions
    poll), and DDL that commits implicitly (it cannot be rolled back).
    """

    vendor = "mysql"

    def __init__(
        self,
        connection: BaseDatabaseWrapper,
        *,
        schema: str | None,
        originator_id_type: OriginatorIDType = "uuid",
    ) -> None:
        if schema is not None:
            msg = (
                f"MariaDB has no schemas (its databases are schemas): cannot pin "
                f"tables to schema {schema!r}; use a database alias of its own instead"
            )
            raise NotSupportedError(msg)
        super().__init__(
            connection, schema=schema, originator_id_type=originator_id_type
        )
        self._connection = connection
        #: The tracking insert that follows each tracking update statement.
        self._tracking_inserts: dict[str, str] = {}

    #: utf8mb4 for any topic, binary collation so that originator IDs, topics
    #: and application names compare exactly, as on PostgreSQL.
    _TABLE_OPTIONS = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

    def _originator_id_column(self) -> str:
        if self.originator_id_type == "text":
            # TEXT cannot be a key without a prefix length.
            return "VARCHAR(255)"
        # The type Django's UUIDField gives (so our models read the column):
        # MariaDB's native UUID from 10.7, 32 hex digits before.
        features: Any = self._connection.features
        return "UUID" if features.has_native_uuid_field else "CHAR(32)"

    def create_table_statements(self, kind: Kind, table: str) -> list[str]:
        t = self.qualify(table)
        comment = f" COMMENT='{TABLE_COMMENT_PREFIX}{kind}'"
        if kind == "tracking":
            return [
                f"CREATE TABLE IF NOT EXISTS {t} (application_name VARCHAR(255) "
                "NOT NULL PRIMARY KEY, notification_id BIGINT NOT NULL)"
                + self._TABLE_OPTIONS
                + comment
            ]
        columns = (
            f"originator_id {self._originator_id_column()} NOT NULL, "
            "originator_version BIGINT NOT NULL, topic TEXT NOT NULL, "
            "state LONGBLOB NOT NULL, "
        )
        if kind == "events":
            # AUTO_INCREMENT needs a key of its own; index names are per table.
            columns += (
                "notification_id BIGINT NOT NULL AUTO_INCREMENT, "
                "UNIQUE KEY notification_id (notification_id), "
            )
        statements = [
            f"CREATE TABLE IF NOT EXISTS {t} ({columns}"
            "PRIMARY KEY (originator_id, originator_version))"
            + self._TABLE_OPTIONS
            + comment
        ]
        if kind == "events":
            statements.insert(
                0,
                f"CREATE TABLE IF NOT EXISTS {self.quote(MYSQL_LOCK_TABLE)} "
                "(name VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL "
                "PRIMARY KEY) ENGINE=InnoDB",
            )
        return statements

    def truncate_table_statements(self, table: str) -> list[tuple[str, list[Any]]]:
        # TRUNCATE restarts AUTO_INCREMENT at 1; like all DDL, it commits.
        return [(f"TRUNCATE TABLE {self.qualify(table)}", [])]

    def table_exists(self, cursor: CursorWrapper, table: str) -> bool:
        cursor.execute(
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = %s",
            [table],
        )
        return cursor.fetchone() is not None

    # 4 parameters a row; mysqlclient binds on the client, so the bound is the
    # server's max_allowed_packet (16 MiB by default), not a parameter count.
    max_insert_rows = 1000

    def lock_table_statements(self, table: str, lock_timeout: float) -> list[str]:
        # InnoDB has no transaction-scoped table lock (LOCK TABLES commits the
        # transaction and is session-scoped), so writers of one table take
        # turns on its row in the lock table: INSERT ... ON DUPLICATE KEY UPDATE
        # creates the row if need be and holds an exclusive lock on it until
        # commit or rollback. One row per table: other applications never wait.
        # The table name is a checked identifier ([A-Za-z0-9_]).
        statement = (
            f"INSERT INTO {self.quote(MYSQL_LOCK_TABLE)} (name) VALUES ('{table}') "
            "ON DUPLICATE KEY UPDATE name = name"
        )
        if lock_timeout > 0:
            # Whole seconds; PostgreSQL's 0 (wait for ever) is the server default
            # here (innodb_lock_wait_timeout, 50 s unless configured).
            seconds = max(1, math.ceil(lock_timeout))
            statement = (
                f"SET STATEMENT innodb_lock_wait_timeout = {seconds} FOR {statement}"
            )
        return [statement]

    def insert_tracking_statement(self, table: str) -> str:
        # No ON CONFLICT ... WHERE here: update the row if the ID advances, else
        # insert it if missing (see advance_tracking).
        t = self.qualify(table)
        update = (
            f"UPDATE {t} SET notification_id = %s "
            "WHERE application_name = %s AND notification_id < %s"
        )
        self._tracking_inserts[update] = (
            f"INSERT IGNORE INTO {t} (application_name, notification_id) "
            "VALUES (%s, %s)"
        )
        return update

    def advance_tracking(
        self, cursor: CursorWrapper, statement: str, name: str, notification_id: int
    ) -> bool:
        # Django connects with CLIENT_FOUND_ROWS: rowcount counts the rows the
        # WHERE matched, which are exactly those that advance.
        cursor.execute(statement, [notification_id, name, notification_id])
        if cursor.rowcount == 1:
            return True
        # No row to advance: a new one, unless one exists (at or past the ID).
        cursor.execute(self._tracking_inserts[statement], [name, notification_id])
        return bool(cursor.rowcount == 1)

    def adapt_originator_id(self, originator_id: UUID | str) -> Any:
        # 32 hex digits suit both CHAR(32) and the UUID type (which takes them
        # with or without hyphens).
        return originator_id.hex if isinstance(originator_id, UUID) else originator_id

    def convert_originator_id(self, value: Any) -> UUID | str:
        return UUID(value) if self.originator_id_type == "uuid" else value

    @staticmethod
    def is_missing_table(exc: BaseException) -> bool:
        cause = exc.__cause__ or exc
        return bool(cause.args) and cause.args[0] == _ER_NO_SUCH_TABLE

    def is_connection_error(self, exc: BaseException) -> bool:
        if isinstance(exc, django_errors.InterfaceError):
            return True  # "(0, '')": the connection is closed
        cause = exc.__cause__ if isinstance(exc, django_errors.Error) else exc
        if cause is None or not cause.args or not isinstance(cause.args[0], int):
            return False
        # Server errors (lock wait timeout 1205, deadlock 1213) leave the
        # connection usable; these mean it is gone or could not be made.
        return cause.args[0] in _MYSQL_DISCONNECT_ERRORS

    def is_closed(self, connection: BaseDatabaseWrapper) -> bool:
        raw = connection.connection
        return raw is not None and not getattr(raw, "open", True)


#: ER_NO_SUCH_TABLE ("Table ... doesn't exist").
_ER_NO_SUCH_TABLE = 1146
#: Can't connect (2002 socket, 2003 TCP), server has gone away (2006), lost
#: connection (2013, 2055), connection killed (1927), shutdown in progress
#: (1053), disconnected for inactivity (4031).
_MYSQL_DISCONNECT_ERRORS = frozenset({2002, 2003, 2006, 2013, 2055, 1927, 1053, 4031})


DIALECTS: dict[str, type[Dialect]] = {
    PostgresDialect.vendor: PostgresDialect,
    SQLiteDialect.vendor: SQLiteDialect,
    MySQLDialect.vendor: MySQLDialect,
}


def dialect_for(
    connection: BaseDatabaseWrapper,
    *,
    schema: str | None,
    originator_id_type: OriginatorIDType = "uuid",
) -> Dialect:
    """The dialect of ``connection``'s vendor, or a clear error."""
    try:
        cls = DIALECTS[connection.vendor]
    except KeyError:
        msg = (
            f"Database alias {connection.alias!r} uses vendor "
            f"{connection.vendor!r}; eventsourcing_django supports "
            f"{', '.join(sorted(DIALECTS))}"
        )
        raise NotSupportedError(msg) from None
    return cls(connection, schema=schema, originator_id_type=originator_id_type)
