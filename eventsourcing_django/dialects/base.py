"""The interface of a vendor's dialect, its capability flags, and the SQL that
every vendor shares (the reads, the multi-row insert)."""

from __future__ import annotations

import contextlib
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from eventsourcing.persistence import NotSupportedError

from eventsourcing_django.tables import MAX_IDENTIFIER_BYTES

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper
    from eventsourcing.persistence import StoredEvent

    from eventsourcing_django.dialects.dcb import DCBStatements
    from eventsourcing_django.vocabulary import Kind, OriginatorIDType


#: Sends a lock and an insert as one query: (cursor, stored events) -> new IDs.
OneQueryInsert = Callable[[Any, Sequence["StoredEvent"]], list[int]]

#: Our tables' comments start with this, followed by their kind.
TABLE_COMMENT_PREFIX = "eventsourcing_django:"


class Dialect(ABC):
    """SQL for one vendor; subclasses fill in what differs."""

    # Capabilities (as Django's features.py) ---------------------------------

    #: Django's ``connection.vendor`` this dialect serves.
    vendor: ClassVar[str]
    #: The vendor's name in messages.
    display_name: ClassVar[str]
    #: Whether tables can be pinned to a schema (else a pinned application is
    #: refused, here and by system check E007).
    supports_schemas: ClassVar[bool] = False
    #: Whether LISTEN/NOTIFY can wake subscriptions (else they poll).
    can_listen: ClassVar[bool] = False
    #: Seconds between polls of a subscription that has not been woken.
    poll_interval: ClassVar[float] = 0.1
    #: The most rows one insert statement may carry (bound by parameter limits).
    max_insert_rows: ClassVar[int] = 100_000
    #: The longest type or tag a DCB application's tables take, in characters
    #: (None: any length); a longer one is refused before anything is written.
    max_dcb_key_chars: ClassVar[int | None] = None
    #: Whether recorders may run their statements on the driver's own cursor of
    #: an open connection (the short path: see recorders.py), with
    #: :meth:`raw_statement`'s text, rather than through Django's cursor.
    short_path: ClassVar[bool] = True
    #: The statement that starts a write transaction on the driver's connection
    #: in the short path, or None if writes take Django's ``atomic()`` there
    #: (or, on PostgreSQL, go as one statement in autocommit mode).
    begin_write_statement: ClassVar[str | None] = None

    def __init__(
        self,
        connection: BaseDatabaseWrapper,
        *,
        schema: str | None,
        originator_id_type: OriginatorIDType = "uuid",
    ) -> None:
        if schema is not None and not self.supports_schemas:
            msg = (
                f"{self.display_name} has no schemas: cannot pin tables to schema "
                f"{schema!r} (give the application a database alias of its own)"
            )
            raise NotSupportedError(msg)
        self.connection = connection
        self.alias = connection.alias
        self.quote = connection.ops.quote_name
        self.schema = schema
        self.originator_id_type = originator_id_type

    def server_problem(self, connection: BaseDatabaseWrapper) -> str | None:
        """Why the server of ``connection`` (this thread's, to this dialect's
        alias) cannot keep our tables, if it cannot; None if it can. It may ask
        the server, once per connection wrapper."""
        return None

    def qualify(self, table: str) -> str:
        """The quoted, schema-qualified name of ``table``."""
        if self.schema is None:
            return self.quote(table)
        return f"{self.quote(self.schema)}.{self.quote(table)}"

    def raw_statement(self, statement: str) -> str:
        """``statement`` (with Django's ``%s`` placeholders) as the driver's own
        cursor takes it."""
        return statement

    # DDL ---------------------------------------------------------------------

    def create_schema_statements(self) -> list[str]:
        """Statements that make the schema the tables are pinned to, if missing."""
        return []

    @abstractmethod
    def create_table_statements(self, kind: Kind, table: str) -> list[str]:
        """Statements that create ``table`` of ``kind``, each idempotent."""

    def drop_table_statements(self, table: str) -> list[str]:
        return [f"DROP TABLE IF EXISTS {self.qualify(table)}"]

    @abstractmethod
    def truncate_table_statements(self, table: str) -> list[tuple[str, list[Any]]]:
        """Delete every row and restart the table's notification IDs at 1."""

    def reset_statements(self, kind: Kind, table: str) -> list[tuple[str, list[Any]]]:
        """Empty ``table`` as when it was created (IDs from 1, markers kept)."""
        return self.truncate_table_statements(table)

    def dcb_statements(
        self, events_table: str, tags_table: str, lock_timeout: float
    ) -> DCBStatements:
        """The statements of a DCB application's tables (see dialects/dcb.py)."""
        from eventsourcing_django.dialects.dcb import DCBStatements

        return DCBStatements(self, events_table, tags_table, lock_timeout)

    def marked_tables(self, cursor: CursorWrapper) -> list[tuple[Kind, str]]:
        """Our tables in this dialect's schema, as their comments tell."""
        raise NotSupportedError(f"{self.vendor} has no table comments to read")

    @abstractmethod
    def table_exists(self, cursor: CursorWrapper, table: str) -> bool:
        """Whether ``table`` exists in this dialect's schema (or database)."""

    def serialize_ddl(self, cursor: CursorWrapper, table: str) -> None:
        """Make concurrent creators of ``table`` wait for each other."""
        return  # By default, the database does.

    # DML ---------------------------------------------------------------------

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
        return  # By default, one statement, one result.

    def one_query_insert(
        self, table: str, lock_statements: Sequence[str]
    ) -> OneQueryInsert | None:
        """A function that sends ``lock_statements`` and the insert of up to
        :attr:`max_insert_rows` events into ``table`` as one query, on a cursor
        of a connection that :meth:`sends_many_statements`, and returns the new
        notification IDs in order; None where no such query exists (no lock to
        send, or a driver that takes one statement per execute)."""
        return None

    def listen_statement(self, channel: str) -> str:
        raise NotSupportedError(f"{self.display_name} has no LISTEN")

    @staticmethod
    def wait_for_notify(raw: Any, timeout: float) -> bool:
        raise NotSupportedError("no LISTEN/NOTIFY on this database")

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

    # Reads ---------------------------------------------------------------------

    def select_events_statement(
        self, table: str, *, gt: bool, lte: bool, desc: bool, limit: bool
    ) -> str:
        """An aggregate's events; parameters: originator ID, then ``gt``,
        ``lte`` and ``limit`` when true."""
        statement = (
            "SELECT originator_id, originator_version, topic, state "
            f"FROM {self.qualify(table)} WHERE originator_id = %s"
        )
        if gt:
            statement += " AND originator_version > %s"
        if lte:
            statement += " AND originator_version <= %s"
        statement += " ORDER BY originator_version " + ("DESC" if desc else "ASC")
        if limit:
            statement += " LIMIT %s"
        return statement

    def select_notifications_statement(
        self, table: str, *, start: str | None, stop: bool, topics: int
    ) -> str:
        """Notifications in ID order; ``start`` is ">=", ">" or None. Parameters:
        start, stop, the ``topics`` topics, then the limit."""
        conditions: list[str] = []
        if start is not None:
            conditions.append(f"notification_id {start} %s")
        if stop:
            conditions.append("notification_id <= %s")
        if topics:
            conditions.append(f"topic IN ({', '.join(['%s'] * topics)})")
        statement = (
            "SELECT notification_id, originator_id, originator_version, topic, state "
            f"FROM {self.qualify(table)}"
        )
        if conditions:
            statement += " WHERE " + " AND ".join(conditions)
        return statement + " ORDER BY notification_id LIMIT %s"

    def max_notification_id_statement(self, table: str) -> str:
        return f"SELECT MAX(notification_id) FROM {self.qualify(table)}"

    def max_tracking_id_statement(self, table: str) -> str:
        return (
            f"SELECT notification_id FROM {self.qualify(table)} "
            "WHERE application_name = %s"
        )

    def delete_tracking_statement(self, table: str) -> str:
        """Forget every upstream position in ``table`` (keeping the marker row
        that eventsourcing.postgres looks for)."""
        return (
            f"DELETE FROM {self.qualify(table)} "
            "WHERE application_name <> '__migration__'"
        )

    def lock_tracking_statement(self, table: str) -> str:
        """Lock one upstream's tracking row in ``table`` and return its position
        (a projection's page; one parameter, the upstream's name).

        An UPDATE rather than SELECT ... FOR UPDATE: it takes SQLite's write
        lock at once too, and reads the same on PostgreSQL and SQLite.
        """
        return (
            f"UPDATE {self.qualify(table)} SET notification_id = notification_id "
            "WHERE application_name = %s RETURNING notification_id"
        )

    def delete_tracking_row_statement(self, table: str) -> str:
        """Forget one upstream's position (one parameter, its name)."""
        return f"DELETE FROM {self.qualify(table)} WHERE application_name = %s"

    def rename_tracking_row_statement(self, table: str) -> str:
        """Give a position another upstream's name (new name, old name)."""
        return (
            f"UPDATE {self.qualify(table)} SET application_name = %s "
            "WHERE application_name = %s"
        )

    def adapt_originator_id(self, originator_id: UUID | str) -> Any:
        return originator_id

    def convert_originator_id(self, value: Any) -> UUID | str:
        return value  # type: ignore[no-any-return]

    @staticmethod
    @abstractmethod
    def is_missing_table(exc: BaseException) -> bool:
        """Whether ``exc`` says that a table does not exist."""

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
