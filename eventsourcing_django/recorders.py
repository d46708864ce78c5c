"""Recorders that keep an application's events in its own tables, through Django.

Every statement runs on the recorder's database alias (:attr:`DjangoRecorder.using`)
through Django's connection for the current thread, inside Django's transactions, so
events can be saved in the same ``transaction.atomic()`` block as ordinary models.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from asyncio import _get_running_loop
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from django.db import connections, transaction
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    IntegrityError,
    Notification,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)

from eventsourcing_django.builder import build_model
from eventsourcing_django.dialects import Dialect, dialect_for
from eventsourcing_django.errors import (
    ConnectionLostError,
    DatabaseUnavailableError,
    check_database_alias,
    missing_table_message,
    translate_errors,
)
from eventsourcing_django.retry import (
    connect,
    discarding_broken_connection,
    with_retries,
)
from eventsourcing_django.tables import ApplicationTables, check_schema_name
from eventsourcing_django.threads import connection_scope, note_open
from eventsourcing_django.vocabulary import Kind, OriginatorIDType

logger = logging.getLogger(__name__)

T = TypeVar("T")

if TYPE_CHECKING:
    from django.db import models
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper

    from eventsourcing_django.dialects.base import OneQueryInsert


class _ThisThread(threading.local):
    """What a recorder keeps per thread (defaults for a thread's first call)."""

    #: The thread's Django connection to the recorder's alias.
    connection: BaseDatabaseWrapper | None = None
    #: The driver's connection last found fit for the one-query insert, once
    #: the dialect said it takes several statements and a worker thread's
    #: closer knows it; never a pooled one (see
    #: :meth:`DjangoApplicationRecorder._takes_one_query`).
    one_query_raw: Any = None


class DjangoRecorder:
    """What all our recorders share: one application, one alias, its tables."""

    def __init__(
        self,
        application_name: str,
        *,
        using: str = "default",
        schema: str | None = None,
        lock_timeout: float = 0.0,
        originator_id_type: OriginatorIDType = "uuid",
    ) -> None:
        self.application_name = application_name
        self.tables = ApplicationTables.for_application(application_name)
        # The factory checks first, naming the setting or env the alias came from.
        self.using = check_database_alias(
            using,
            application_name=application_name,
            source=f"the recorder's argument using={using!r}",
        )
        self.schema = None if schema is None else check_schema_name(schema)
        if lock_timeout < 0:
            msg = f"Lock timeout must not be negative, got {lock_timeout}"
            raise ValueError(msg)
        self.lock_timeout = lock_timeout
        self.originator_id_type = originator_id_type
        self.dialect: Dialect = dialect_for(
            connections[using],
            schema=self.schema,
            originator_id_type=originator_id_type,
        )
        # For the log of retries (made once: not per call).
        self._reading = f"Reading {application_name!r} on {using!r}"
        self._writing = f"Writing {application_name!r} on {using!r}"
        self._this_thread = _ThisThread()

    @property
    def connection(self) -> BaseDatabaseWrapper:
        """This thread's Django connection to the recorder's alias.

        Kept per thread after the first look-up: ``connections[alias]`` costs
        more than the rest of a short insert's Python (docs/profile.md), and
        outside async code Django keeps one wrapper per thread for the thread's
        life, as this does. Where an event loop runs, Django's wrapper is per
        task, so it is looked up every time.
        """
        if _get_running_loop() is None:
            connection = self._this_thread.connection
            if connection is None:
                connection = self._this_thread.connection = connections[self.using]
            return connection
        return connections[self.using]

    def _own_tables(self) -> list[tuple[Kind, str]]:
        """The tables this recorder reads and writes, with their kinds."""
        raise NotImplementedError

    def create_table(self) -> None:
        """Create this recorder's tables if they do not exist (idempotent)."""
        from eventsourcing_django.ddl import create_table

        for kind, table in self._own_tables():
            create_table(self.using, self.dialect, kind, table)

    def _describe_missing(self, message: str) -> str:
        tables = self._own_tables()
        named = [(k, t) for k, t in tables if t in message] or tables
        return missing_table_message(
            self.application_name,
            named,
            self.using,
            self.schema,
            originator_id_type=self.originator_id_type,
            # A schema django-tenants set on the connection, or one of its tenants.
            tenant_schema=self.schema is not None
            and hasattr(self.connection, "set_schema"),
        )

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Connect if need be, translate errors, discard a broken connection
        (see retry.py); close what a worker thread opened (see threads.py)."""
        connection = self.connection
        dialect = self.dialect
        with (
            connection_scope(connection),
            translate_errors(
                dialect.is_missing_table, self._describe_missing, dialect.is_bad_value
            ),
            discarding_broken_connection(connection, dialect.is_connection_error),
        ):
            connect(connection, dialect.is_connection_error, dialect.is_closed)
            yield

    def _short_path(self, connection: BaseDatabaseWrapper) -> Any | None:
        """The driver's connection, if this call may take the short path.

        The short path runs the statements on the driver's own cursor, without
        Django's cursor wrapper or our context managers (about 40 µs of Python
        a call, measured in docs/profile.md). It is taken only when they would
        do nothing: the connection is open (:meth:`_in_the_way` says the
        rest), and a worker thread's closer knows it. Errors still go through
        :meth:`_raise`.
        """
        raw = connection.connection
        if raw is None or not self.dialect.short_path or self._in_the_way(connection):
            return None
        note_open(connection)
        return raw

    def _in_the_way(self, connection: BaseDatabaseWrapper) -> bool:
        """Whether something on the open ``connection`` needs Django's cursor or
        our context managers for this call: a connection known to be broken, a
        health check due, queries recorded (``DEBUG``), an ``execute_wrapper``
        installed, or the transaction (if the caller's) marked for rollback."""
        # Set by Django's connect(); not in django-stubs.
        health: Any = connection
        return bool(
            connection.execute_wrappers
            or connection.needs_rollback
            or (health.health_check_enabled and not health.health_check_done)
            or connection.queries_logged
            or self.dialect.is_closed(connection)
        )

    def _raise(self, connection: BaseDatabaseWrapper, error: BaseException) -> NoReturn:
        """Raise ``error``, the driver's (from the short path), as
        :meth:`_errors` would: as Django's, then ours."""
        dialect = self.dialect
        with (
            translate_errors(
                dialect.is_missing_table, self._describe_missing, dialect.is_bad_value
            ),
            discarding_broken_connection(connection, dialect.is_connection_error),
            # Django's error for the driver's, as Django's cursor does it (and
            # the connection marked for a health check, if not a data error).
            connection.wrap_database_errors,
        ):
            raise error

    def _retrying_reads(self, read: Callable[[], T]) -> T:
        """``read()``, tried again after a lost connection (see retry.py)."""
        return with_retries(
            read,
            retry_on=(ConnectionLostError, DatabaseUnavailableError),
            what=self._reading,
        )

    def _retrying_connect(self, write: Callable[[], T]) -> T:
        """``write()``, tried again only if it could not connect, so that
        nothing of it was sent (see docs/decisions.md)."""
        return with_retries(
            write,
            retry_on=(DatabaseUnavailableError,),
            what=self._writing,
        )

    def _query(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of a read-only ``statement``."""

        raw_statement = self.dialect.raw_statement

        def read() -> list[Any]:
            connection = self.connection
            raw = self._short_path(connection)
            if raw is not None:
                try:
                    cursor = raw.cursor()
                    try:
                        cursor.execute(raw_statement(statement), params)
                        rows: list[Any] = cursor.fetchall()
                    finally:
                        cursor.close()
                except Exception as e:
                    self._raise(connection, e)
                return rows
            with self._read() as cursor:
                cursor.execute(statement, params)
                rows = cursor.fetchall()
                return rows

        return self._retrying_reads(read)

    @contextlib.contextmanager
    def _write(self) -> Iterator[CursorWrapper]:
        """A cursor in a transaction on the recorder's alias, for writing."""
        with self._errors(), self._transaction() as cursor:
            yield cursor

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[CursorWrapper]:
        """:meth:`_write` without translating errors (for callers that do)."""
        with (
            self.dialect.write_lock(),
            transaction.atomic(using=self.using),
            self.connection.cursor() as cursor,
        ):
            yield cursor

    @contextlib.contextmanager
    def _read(self) -> Iterator[CursorWrapper]:
        with self._errors(), self.connection.cursor() as cursor:
            yield cursor


class DjangoAggregateRecorder(DjangoRecorder, AggregateRecorder):
    """Stores the events of aggregates in ``<name>_<purpose>``."""

    def __init__(
        self, application_name: str, *, purpose: str = "events", **kwargs: Any
    ) -> None:
        super().__init__(application_name, **kwargs)
        self.table = self.tables.for_purpose(purpose)
        # An "events" table may be shared with an application recorder, so it
        # always has notification IDs; other purposes (snapshots) do not.
        self.kind: Kind = "events" if purpose == "events" else "snapshots"
        self._insert_statements: dict[tuple[int, bool], str] = {}
        self._select_statements: dict[tuple[bool, bool, bool, bool], str] = {}

    def _own_tables(self) -> list[tuple[Kind, str]]:
        return [(self.kind, self.table)]

    @cached_property
    def model(self) -> type[models.Model]:
        """The Django model of this recorder's table (for queries and admin)."""
        return build_model(
            self.kind,
            self.table,
            application_name=self.application_name,
            schema=self.schema,
            originator_id_type=self.originator_id_type,
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        def write() -> None:
            with self._write() as cursor:
                self._insert_events(cursor, stored_events, **kwargs)

        self._retrying_connect(write)
        return None

    def _insert_events(
        self, cursor: CursorWrapper, stored_events: Sequence[StoredEvent], **_: Any
    ) -> list[int] | None:
        self._insert_rows(cursor, stored_events, returning=False)
        return None

    def _insert_rows(
        self,
        cursor: CursorWrapper,
        stored_events: Sequence[StoredEvent],
        *,
        returning: bool,
        raw: bool = False,
    ) -> list[int]:
        """Insert in as few statements as the dialect allows; the new IDs in
        order if ``returning``, else none.

        ``raw``: ``cursor`` is the driver's own (the short path).
        """
        ids: list[int] = []
        dialect = self.dialect
        step = dialect.max_insert_rows
        for start in range(0, len(stored_events), step):
            chunk = stored_events[start : start + step]
            statement = self._insert_statement(len(chunk), returning=returning)
            cursor.execute(
                dialect.raw_statement(statement) if raw else statement,
                dialect.insert_events_params(chunk),
            )
            if returning:
                # IDs are issued in insert order; the order rows come back in
                # is not promised by every database.
                ids += sorted(row[0] for row in cursor.fetchall())
        return ids

    def _insert_statement(self, count: int, *, returning: bool) -> str:
        key = (self.dialect.insert_statement_key(count), returning)
        try:
            return self._insert_statements[key]
        except KeyError:
            statement = self.dialect.insert_events_statement(
                self.table, count=count, returning=returning
            )
            self._insert_statements[key] = statement
            return statement

    def select_events(
        self,
        originator_id: Any,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        key = (gt is not None, lte is not None, desc, limit is not None)
        statement = self._select_statements.get(key)
        if statement is None:
            statement = self.dialect.select_events_statement(
                self.table, gt=key[0], lte=key[1], desc=desc, limit=key[3]
            )
            self._select_statements[key] = statement
        params: list[Any] = [self.dialect.adapt_originator_id(originator_id)]
        params += [p for p in (gt, lte, limit) if p is not None]
        rows = self._query(statement, params)
        if not rows:
            return []
        # One aggregate: its ID converted once (a UUID from SQLite's text).
        converted = self.dialect.convert_originator_id(rows[0][0])
        # Positional: originator_id, originator_version, topic, state.
        return [StoredEvent(converted, row[1], row[2], bytes(row[3])) for row in rows]


class DjangoApplicationRecorder(DjangoAggregateRecorder, ApplicationRecorder):
    """Stores events in ``<name>_events``, numbered in one notification log."""

    def __init__(self, application_name: str, **kwargs: Any) -> None:
        kwargs.pop("purpose", None)
        super().__init__(application_name, purpose="events", **kwargs)
        self.channel = self.dialect.channel_name(self.table)
        self._lock_statements = self.dialect.lock_table_statements(
            self.table, self.lock_timeout
        )
        # The same statements and the insert in one round trip, where the
        # dialect can send them so (PostgreSQL, client-side binding).
        self._insert_in_one_query = self.dialect.one_query_insert(
            self.table, self._lock_statements
        )
        self._notify_statement = self.dialect.notify_statement(self.channel)
        self._max_notification_id_statement = (
            self.dialect.max_notification_id_statement(self.table)
        )
        self._select_notifications: dict[tuple[str | None, bool, int], str] = {}
        self._subscriptions: set[Any] = set()

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        connection = self.connection
        raw = connection.connection
        if (
            raw is not None
            and not connection.in_atomic_block
            and connection.autocommit
            and 0 < len(stored_events) <= self.dialect.max_insert_rows
            and kwargs.get("tracking") is None
        ):
            # The short path (see _short_path). Not retried: the connection is
            # open, so an error here is never "could not connect", the only one
            # a write is retried on.
            insert: OneQueryInsert | None = None
            if raw is self._this_thread.one_query_raw:
                if not self._in_the_way(connection):
                    insert = self._insert_in_one_query
            elif self._short_path(connection) is not None:
                if self._takes_one_query(connection, raw):
                    insert = self._insert_in_one_query
                elif self.dialect.begin_write_statement is not None:
                    insert = self._insert_in_own_transaction
            if insert is not None:
                # The commonest call, as flat as it goes: every function it
                # enters costs (docs/profile.md).
                cursor = raw.cursor()
                try:
                    try:
                        ids = insert(cursor, stored_events)
                    except Exception as e:
                        self._raise(connection, e)
                    self._after_commit(notify=bool(ids), cursor=cursor)
                finally:
                    cursor.close()
                return ids
        return self._retrying_connect(
            partial(self._insert_events_long, stored_events, **kwargs)
        )

    def _takes_one_query(self, connection: BaseDatabaseWrapper, raw: Any) -> bool:
        """Whether the driver's connection ``raw`` takes the dialect's one-query
        insert. If so, it is kept as this thread's ``one_query_raw`` (the next
        calls on it skip the question and what :meth:`_short_path` did once),
        unless it comes from Django's pool: a pooled connection can come back
        to this thread after another, and a worker thread's closer must be
        told of it each time (see threads.py)."""
        if self._insert_in_one_query is None or not self.dialect.sends_many_statements(
            raw
        ):
            return False
        if not connection.settings_dict.get("OPTIONS", {}).get("pool"):
            self._this_thread.one_query_raw = raw
        return True

    def _insert_events_long(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """The insert through Django's cursor, in the caller's transaction or
        one of ours (see :meth:`_short_path` for when the other path is taken)."""
        with self._errors():
            connection = self.connection
            insert = self._insert_in_one_query
            if insert is not None and self._commits_in_one_statement(
                connection, stored_events, **kwargs
            ):
                # Outside a transaction, the server runs the statements of one
                # query as one transaction and commits it: one round trip.
                with connection.cursor() as cursor:
                    inserted = insert(cursor, stored_events)
                    self._after_commit(notify=bool(inserted), cursor=cursor)
                return inserted
            # on_commit() needs an atomic block or autocommit mode: not so in
            # manual transaction management, where NOTIFY stays in the transaction.
            notify_after_commit = (
                connection.in_atomic_block or connection.get_autocommit()
            )
            with self._transaction() as cursor:
                ids = self._insert_events(cursor, stored_events, **kwargs)
                notify_statement = self._notify_statement if ids else None
                if notify_statement is not None and not notify_after_commit:
                    cursor.execute(notify_statement)
                    notify_statement = None
                notify = notify_statement is not None
                if notify or self._subscriptions:
                    after_commit = partial(self._after_commit, notify=notify)
                    transaction.on_commit(after_commit, using=self.using)
            return ids

    def _insert_in_own_transaction(
        self, cursor: Any, stored_events: Sequence[StoredEvent]
    ) -> list[int]:
        """Insert with the driver's ``cursor`` of a connection in autocommit
        mode, in a transaction of our own begun by the dialect's statement
        (SQLite's ``BEGIN IMMEDIATE``)."""
        raw = cursor.connection
        with self.dialect.write_lock():
            cursor.execute(self.dialect.begin_write_statement)
            try:
                ids = self._insert_rows(cursor, stored_events, returning=True, raw=True)
                raw.commit()
            except BaseException:
                raw.rollback()
                raise
        return ids

    def _after_commit(
        self, *, notify: bool, cursor: CursorWrapper | None = None
    ) -> None:
        """Wake subscriptions, here and (with ``notify``) in other sessions.

        NOTIFY goes after the commit, in a transaction of its own that writes
        nothing: PostgreSQL serializes the commits of all transactions that
        notify (with a database-wide lock held until their commit is flushed),
        so a NOTIFY in the insert's transaction would make writers of different
        applications take turns. A listener that misses it still polls.
        """
        if self._subscriptions:
            self._wake_subscriptions()
        if notify and self._notify_statement:
            try:
                if cursor is not None:
                    cursor.execute(self._notify_statement)
                else:
                    with self._read() as own_cursor:
                        own_cursor.execute(self._notify_statement)
            except Exception:
                # The events are committed: report, do not fail the insert.
                logger.exception("NOTIFY after inserting into %s failed", self.table)

    def _commits_in_one_statement(
        self,
        connection: BaseDatabaseWrapper,
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> bool:
        """Whether one execute, in autocommit mode, can do the whole insert
        (given the dialect's one-query insert: the caller has it)."""
        return (
            0 < len(stored_events) <= self.dialect.max_insert_rows
            and kwargs.get("tracking") is None
            and not connection.in_atomic_block
            and connection.get_autocommit()  # connects, if need be
            and self.dialect.sends_many_statements(connection.connection)
        )

    def _insert_events(
        self, cursor: CursorWrapper, stored_events: Sequence[StoredEvent], **_: Any
    ) -> list[int] | None:
        if not stored_events:
            return []
        insert = self._insert_in_one_query
        if (
            insert is not None
            and len(stored_events) <= self.dialect.max_insert_rows
            and self.dialect.sends_many_statements(cursor.db.connection)
        ):
            return insert(cursor, stored_events)
        for statement in self._lock_statements:
            cursor.execute(statement)
        return self._insert_rows(cursor, stored_events, returning=True)

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        operator = None if start is None else (">=" if inclusive_of_start else ">")
        key = (operator, stop is not None, len(topics))
        statement = self._select_notifications.get(key)
        if statement is None:
            statement = self.dialect.select_notifications_statement(
                self.table, start=operator, stop=key[1], topics=key[2]
            )
            self._select_notifications[key] = statement
        params: list[Any] = [p for p in (start, stop) if p is not None]
        params += [*topics, limit]
        rows = self._query(statement, params)
        convert = self.dialect.convert_originator_id
        return [
            Notification(
                id=row[0],
                originator_id=convert(row[1]),
                originator_version=row[2],
                topic=row[3],
                state=bytes(row[4]),
            )
            for row in rows
        ]

    def max_notification_id(self) -> int | None:
        rows = self._query(self._max_notification_id_statement)
        return rows[0][0] if rows else None

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        from eventsourcing_django.subscriptions import DjangoSubscription

        return DjangoSubscription(recorder=self, gt=gt, topics=topics)

    def _wake_subscriptions(self) -> None:
        for subscription in list(self._subscriptions):
            subscription.wake()


class DjangoTrackingRecorder(DjangoRecorder, TrackingRecorder):
    """Records how far ``<name>_tracking`` has read each upstream log.

    Subclass it to write a projection's view: do the view's writes and
    :meth:`_insert_tracking` inside :meth:`tracking_transaction` and both commit
    together or not at all.
    """

    def __init__(self, application_name: str, **kwargs: Any) -> None:
        super().__init__(application_name, **kwargs)
        self.tracking_table = self.tables.tracking
        self._insert_tracking_statement = self.dialect.insert_tracking_statement(
            self.tracking_table
        )
        self._max_tracking_id_statement = self.dialect.max_tracking_id_statement(
            self.tracking_table
        )

    def _own_tables(self) -> list[tuple[Kind, str]]:
        return [("tracking", self.tracking_table)]

    @cached_property
    def tracking_model(self) -> type[models.Model]:
        """The Django model of the tracking table."""
        return build_model(
            "tracking",
            self.tracking_table,
            application_name=self.application_name,
            schema=self.schema,
        )

    @contextlib.contextmanager
    def tracking_transaction(self) -> Iterator[CursorWrapper]:
        """A transaction on the recorder's alias, with a cursor to write in."""
        with self._write() as cursor:
            yield cursor

    def insert_tracking(self, tracking: Tracking) -> None:
        def write() -> None:
            with self._write() as cursor:
                self._insert_tracking(cursor, tracking)

        self._retrying_connect(write)

    def _insert_tracking(self, cursor: CursorWrapper, tracking: Tracking) -> None:
        if not self.dialect.advance_tracking(
            cursor,
            self._insert_tracking_statement,
            tracking.application_name,
            tracking.notification_id,
        ):
            msg = (
                f"Tracking of {tracking.application_name!r} is already at or past "
                f"notification {tracking.notification_id}"
            )
            raise IntegrityError(msg)

    def max_tracking_id(self, application_name: str) -> int | None:
        rows = self._query(self._max_tracking_id_statement, [application_name])
        return rows[0][0] if rows else None


class DjangoProcessRecorder(
    DjangoTrackingRecorder, DjangoApplicationRecorder, ProcessRecorder
):
    """Records tracking and new events in one transaction."""

    def _own_tables(self) -> list[tuple[Kind, str]]:
        return [("events", self.table), ("tracking", self.tracking_table)]

    def _insert_events(
        self, cursor: CursorWrapper, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> list[int] | None:
        tracking: Tracking | None = kwargs.get("tracking")
        if tracking is not None:
            self._insert_tracking(cursor, tracking)
        return super()._insert_events(cursor, stored_events, **kwargs)
