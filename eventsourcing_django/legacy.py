"""The shared tables of eventsourcing-django 0.x, and the SQL that copies out of them.

Versions 0.1 to 0.6 kept every application in three tables made by their
``0001_initial`` migration: ``stored_events`` (``id`` is the notification ID, from
one sequence for all applications), ``snapshots`` and ``notification_tracking``
(one row per processed notification; a follower's position is the largest), each
with an ``application_name`` column. :class:`LegacySQL` reads them; it is the same
on every vendor, as that package's ORM queries were.

:class:`CopySQL` writes one application's own tables from them, with a statement
set per vendor of the *target* alias: server-side ``INSERT ... SELECT`` when the
shared tables are on the same alias, multi-row inserts of fetched batches when they
are not (no statement reaches across two databases).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    from eventsourcing_django.dialects import Dialect

EVENTS_TABLE = "stored_events"
SNAPSHOTS_TABLE = "snapshots"
TRACKING_TABLE = "notification_tracking"
#: In the order to drop them (0.x's foreign keys: none; still, events last).
TABLES = (TRACKING_TABLE, SNAPSHOTS_TABLE, EVENTS_TABLE)

#: The row eventsourcing.postgres keeps in tracking tables (see
#: dialects/postgresql.py); not a position, so never compared with the shared tables.
TRACKING_MARKER = "__migration__"


def as_uuid(value: Any) -> UUID:
    """An originator ID as read on any vendor: a UUID, or 32 hex digits (SQLite)."""
    return value if isinstance(value, UUID) else UUID(str(value))


class LegacySQL:
    """Statements that read one application's rows from the shared tables."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        q = connection.ops.quote_name
        self.events, self.snapshots, self.tracking = (
            q(EVENTS_TABLE),
            q(SNAPSHOTS_TABLE),
            q(TRACKING_TABLE),
        )
        self.event_columns = "id, originator_id, originator_version, topic, state"
        self.snapshot_columns = "originator_id, originator_version, topic, state"

    def applications(self, present: set[str]) -> str:
        """Each application name found, with its events and snapshots counted."""
        parts = []
        if EVENTS_TABLE in present:
            parts.append(
                f"SELECT application_name, COUNT(*), 0 FROM {self.events} "
                "GROUP BY application_name"
            )
        if SNAPSHOTS_TABLE in present:
            parts.append(
                f"SELECT application_name, 0, COUNT(*) FROM {self.snapshots} "
                "GROUP BY application_name"
            )
        if TRACKING_TABLE in present:
            parts.append(f"SELECT DISTINCT application_name, 0, 0 FROM {self.tracking}")
        return " UNION ALL ".join(parts)

    @property
    def positions(self) -> str:
        return (
            "SELECT upstream_application_name, MAX(notification_id) "
            f"FROM {self.tracking} WHERE application_name = %s "
            "GROUP BY upstream_application_name"
        )

    @property
    def events_summary(self) -> str:
        """Count and largest notification ID of the application's events up to
        a notification ID."""
        return (
            f"SELECT COUNT(*), MIN(id), MAX(id) FROM {self.events} "
            "WHERE application_name = %s AND id <= %s"
        )

    @property
    def event_at(self) -> str:
        return (
            f"SELECT originator_id, originator_version FROM {self.events} "
            "WHERE application_name = %s AND id = %s"
        )

    @property
    def last_event(self) -> str:
        return (
            f"SELECT originator_id, originator_version FROM {self.events} "
            "WHERE application_name = %s ORDER BY id DESC LIMIT 1"
        )

    @property
    def select_events(self) -> str:
        """A batch of events after a notification ID, in notification order."""
        return (
            f"SELECT {self.event_columns} FROM {self.events} "
            "WHERE application_name = %s AND id > %s ORDER BY id LIMIT %s"
        )

    @property
    def event_id_bound(self) -> str:
        """The notification ID that ends a batch of events (None: fewer left)."""
        return (
            f"SELECT id FROM {self.events} WHERE application_name = %s "
            "AND id > %s ORDER BY id LIMIT 1 OFFSET %s"
        )

    @property
    def max_event_id(self) -> str:
        return (
            f"SELECT MAX(id) FROM {self.events} WHERE application_name = %s AND id > %s"
        )

    @property
    def select_snapshots(self) -> str:
        """A batch of snapshots after a ``uid``, in ``uid`` order, with the last."""
        return (
            f"SELECT uid, {self.snapshot_columns} FROM {self.snapshots} "
            "WHERE application_name = %s AND uid > %s ORDER BY uid LIMIT %s"
        )

    @property
    def snapshot_keys(self) -> str:
        return (
            f"SELECT uid, originator_id, originator_version FROM {self.snapshots} "
            "WHERE application_name = %s AND uid > %s ORDER BY uid LIMIT %s"
        )

    @property
    def snapshot_uid_bound(self) -> str:
        """The ``uid`` that ends a batch of snapshots (None: the rest is short)."""
        return (
            f"SELECT uid FROM {self.snapshots} WHERE application_name = %s "
            "AND uid > %s ORDER BY uid LIMIT 1 OFFSET %s"
        )

    @property
    def last_snapshot(self) -> str:
        return (
            f"SELECT originator_id, originator_version FROM {self.snapshots} "
            "WHERE application_name = %s "
            "ORDER BY originator_id DESC, originator_version DESC LIMIT 1"
        )

    @property
    def count_snapshots(self) -> str:
        return f"SELECT COUNT(*) FROM {self.snapshots} WHERE application_name = %s"

    def drop_tables(self, present: set[str]) -> list[str]:
        q = {
            EVENTS_TABLE: self.events,
            SNAPSHOTS_TABLE: self.snapshots,
            TRACKING_TABLE: self.tracking,
        }
        return [f"DROP TABLE {q[t]}" for t in TABLES if t in present]


class CopySQL:
    """Statements that write one application's tables, on the target's vendor."""

    vendor: ClassVar[str]
    #: Whether :meth:`insert_events` gives rows for ``executemany`` (else one
    #: statement's parameters).
    many: ClassVar[bool] = False

    def __init__(
        self, dialect: Dialect, legacy: LegacySQL, events: str, snapshots: str
    ):
        self.dialect = dialect
        self.legacy = legacy
        self.events = dialect.qualify(events)
        self.snapshots = dialect.qualify(snapshots)
        self.events_table = events

    # The shared tables on the same alias: one statement per batch, in the server.

    @property
    def copy_events(self) -> str:
        """Copy the events in a range of notification IDs, keeping the IDs."""
        return (
            f"INSERT INTO {self.events} "
            "(notification_id, originator_id, originator_version, topic, state) "
            f"SELECT {self.legacy.event_columns} FROM {self.legacy.events} "
            "WHERE application_name = %s AND id > %s AND id <= %s"
        )

    #: Whether an empty events table can be filled with its indexes dropped,
    #: and built again after the rows, in one transaction.
    defers_indexes: ClassVar[bool] = False

    @property
    def indexes(self) -> tuple[str, list[Any]]:
        """A query of the events table's indexes, for :meth:`index_statements`."""
        raise NotImplementedError

    def index_statements(
        self, indexes: Sequence[tuple[Any, ...]]
    ) -> tuple[list[str], list[str]]:
        """Statements that drop the indexes, and that make them again."""
        raise NotImplementedError

    def build_statements(self) -> list[str]:
        """Statements that start the transaction that builds indexes."""
        return []

    @property
    def copy_snapshots(self) -> str:
        """Copy the snapshots in a ``uid`` range, skipping those already copied."""
        raise NotImplementedError

    # The shared tables elsewhere: fetched batches, written in one statement each.

    def insert_events(self, rows: list[tuple[Any, ...]]) -> tuple[str, Any]:
        """A statement and its parameters that insert fetched events."""
        raise NotImplementedError

    def insert_snapshots(self, rows: list[tuple[Any, ...]]) -> tuple[str, Any]:
        """The same for snapshots, skipping those already copied."""
        raise NotImplementedError

    # Both.

    def batch_statements(self) -> list[tuple[str, list[Any]]]:
        """Statements that start a batch's transaction."""
        return []

    def after_events(self, max_id: int) -> list[tuple[str, list[Any]]]:
        """Statements that make new notification IDs start after ``max_id``."""
        return []

    @property
    def target_events_summary(self) -> str:
        return (
            "SELECT COUNT(*), MIN(notification_id), MAX(notification_id) "
            f"FROM {self.events}"
        )

    @property
    def target_event_at(self) -> str:
        return (
            f"SELECT originator_id, originator_version FROM {self.events} "
            "WHERE notification_id = %s"
        )

    @property
    def target_snapshots_summary(self) -> str:
        return f"SELECT COUNT(*) FROM {self.snapshots}"

    @property
    def target_snapshot_keys(self) -> str:
        return f"SELECT originator_id, originator_version FROM {self.snapshots}"

    @property
    def target_last_snapshot(self) -> str:
        return (
            f"SELECT originator_id, originator_version FROM {self.snapshots} "
            "ORDER BY originator_id DESC, originator_version DESC LIMIT 1"
        )

    def target_tracking(self, tracking: str) -> str:
        return (
            "SELECT application_name, notification_id "
            f"FROM {self.dialect.qualify(tracking)}"
        )

    def insert_tracking(self, tracking: str) -> str:
        return (
            f"INSERT INTO {self.dialect.qualify(tracking)} "
            "(application_name, notification_id) VALUES (%s, %s)"
        )

    def _rows(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Fetched rows as the target's driver takes them (last four columns:
        originator ID, version, topic, state)."""
        adapt = self.dialect.adapt_originator_id
        return [
            (*r[:-4], adapt(as_uuid(r[-4])), r[-3], r[-2], bytes(r[-1])) for r in rows
        ]


class PostgresCopySQL(CopySQL):
    vendor = "postgresql"
    # DDL is transactional: a crash leaves the table as it was, indexes and all.
    defers_indexes = True

    @property
    def indexes(self) -> tuple[str, list[Any]]:
        # Each index, and the constraint it backs, if any (the primary key), as
        # the server itself would write them: names and schema kept.
        return (
            "SELECT pg_get_indexdef(i.indexrelid), c.conname, "
            "pg_get_constraintdef(c.oid), i.indexrelid::regclass::text "
            "FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = "
            "i.indexrelid AND c.conrelid = i.indrelid "
            "WHERE i.indrelid = to_regclass(%s) ORDER BY i.indisprimary DESC",
            [self.events],
        )

    def build_statements(self) -> list[str]:
        # Enough memory to sort a few million keys without spilling to disk,
        # for this transaction only (the default is 64MB).
        return ["SET LOCAL maintenance_work_mem = '256MB'"]

    def index_statements(
        self, indexes: Sequence[tuple[Any, ...]]
    ) -> tuple[list[str], list[str]]:
        drops, creates = [], []
        quote = self.dialect.quote
        for index_definition, constraint, constraint_definition, name in indexes:
            if constraint is not None:
                drops.append(
                    f"ALTER TABLE {self.events} DROP CONSTRAINT {quote(constraint)}"
                )
                creates.append(
                    f"ALTER TABLE {self.events} ADD CONSTRAINT {quote(constraint)} "
                    f"{constraint_definition}"
                )
            else:
                drops.append(f"DROP INDEX {name}")
                creates.append(index_definition)
        return drops, creates

    @property
    def copy_snapshots(self) -> str:
        return (
            f"INSERT INTO {self.snapshots} "
            "(originator_id, originator_version, topic, state) "
            f"SELECT {self.legacy.snapshot_columns} FROM {self.legacy.snapshots} "
            "WHERE application_name = %s AND uid > %s AND uid <= %s "
            "ON CONFLICT DO NOTHING"
        )

    def insert_events(self, rows: list[tuple[Any, ...]]) -> tuple[str, Any]:
        # Five arrays, unnested into rows: one statement, whatever the batch size.
        columns = list(zip(*self._rows(rows), strict=True))
        statement = (
            f"INSERT INTO {self.events} "
            "(notification_id, originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%s::bigint[], %s::uuid[], %s::bigint[], "
            "%s::text[], %s::bytea[])"
        )
        return statement, [list(c) for c in columns]

    def insert_snapshots(self, rows: list[tuple[Any, ...]]) -> tuple[str, Any]:
        columns = list(zip(*self._rows(rows), strict=True))
        statement = (
            f"INSERT INTO {self.snapshots} "
            "(originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], "
            "%s::bytea[]) ON CONFLICT DO NOTHING"
        )
        return statement, [list(c) for c in columns]

    def batch_statements(self) -> list[tuple[str, list[Any]]]:
        # A batch lost in a crash is copied again on the next run, so its commit
        # need not wait for the disk; the verification's reads, and the last
        # commit (synchronous), come after every batch is flushed.
        return [("SET LOCAL synchronous_commit = off", [])]

    def after_events(self, max_id: int) -> list[tuple[str, list[Any]]]:
        return [
            (
                "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), %s)",
                [self.events, max_id],
            )
        ]


class SQLiteCopySQL(CopySQL):
    vendor = "sqlite"
    many = True

    @property
    def copy_snapshots(self) -> str:
        return (
            f"INSERT OR IGNORE INTO {self.snapshots} "
            "(originator_id, originator_version, topic, state) "
            f"SELECT {self.legacy.snapshot_columns} FROM {self.legacy.snapshots} "
            "WHERE application_name = %s AND uid > %s AND uid <= %s"
        )

    def insert_events(self, rows: list[tuple[Any, ...]]) -> tuple[str, Any]:
        # AUTOINCREMENT remembers the largest notification ID inserted, so new
        # events follow the copied ones without a statement of ours.
        return (
            f"INSERT INTO {self.events} "
            "(notification_id, originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %s, %s)"
        ), self._rows(rows)

    def insert_snapshots(self, rows: list[tuple[Any, ...]]) -> tuple[str, Any]:
        return (
            f"INSERT OR IGNORE INTO {self.snapshots} "
            "(originator_id, originator_version, topic, state) VALUES (%s, %s, %s, %s)"
        ), self._rows(rows)


COPY_SQL: dict[str, type[CopySQL]] = {
    PostgresCopySQL.vendor: PostgresCopySQL,
    SQLiteCopySQL.vendor: SQLiteCopySQL,
}
