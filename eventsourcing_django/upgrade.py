"""Moving applications out of the shared tables of eventsourcing-django 0.x.

:func:`plan_upgrade` finds the applications in the shared tables on one alias and
places each where the project's settings and routers put its own tables;
:meth:`ApplicationCopy.run` copies its events, snapshots and followers' positions
there, in batches, and verifies the copy;
:func:`drop_legacy_tables` drops the shared tables once every application in them
has been copied and verified. ``manage.py eventsourcing_upgrade`` and the migration
operation :class:`~eventsourcing_django.operations.UpgradeFromSharedTables` drive it.

The copy keeps the old notification IDs (unique and increasing per application,
though not contiguous), so a follower's position means the same before and after
and needs no translation; the events table's sequence is set past the largest.
Batches go in notification ID order and each commits with the rows before it, so
the target always holds a prefix of the application's events: after a crash, the
next run starts after the largest ID copied. On PostgreSQL an empty events table
is instead filled in one transaction, its indexes built after the rows, unless
``commit_each_batch``: a crash leaves it empty, and the next run starts it again.
Snapshots are copied again from the start, skipping those present. See
docs/decisions.md, "Upgrading from 0.x".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.db import connections, transaction
from eventsourcing.persistence import NotSupportedError

from eventsourcing_django.conf import schema_for_application, tenant_schema
from eventsourcing_django.ddl import create_table
from eventsourcing_django.dialects import Dialect, dialect_for

# Defined with the package's other errors; importable from here as before.
from eventsourcing_django.errors import NoSharedTablesError as NoSharedTablesError
from eventsourcing_django.errors import UpgradeError as UpgradeError
from eventsourcing_django.legacy import (
    COPY_SQL,
    EVENTS_TABLE,
    TABLES,
    TRACKING_MARKER,
    TRACKING_TABLE,
    CopySQL,
    LegacySQL,
    as_uuid,
)
from eventsourcing_django.routers import alias_for_application
from eventsourcing_django.tables import ApplicationTables, check_schema_name
from eventsourcing_django.vocabulary import Kind

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

#: Rows per batch, unless told otherwise: large enough that a batch's commit
#: costs little beside its rows, small enough for a lively progress bar.
DEFAULT_BATCH_SIZE = 50_000

#: Larger than any ``uid`` (PostgreSQL's bigint, SQLite's integer).
_MAX_UID = 2**63 - 1


@dataclass(frozen=True)
class LegacyApplication:
    """What the shared tables hold of one application."""

    name: str
    events: int
    snapshots: int
    #: Each upstream application it follows, with the largest notification ID.
    positions: dict[str, int]


@dataclass(frozen=True)
class Copied:
    """How much of an application's rows its own tables hold."""

    events: int
    snapshots: int
    positions: int


@dataclass(frozen=True)
class Skipped:
    """An application left in the shared tables, and why."""

    name: str
    reason: str


def shared_tables_on(alias: str) -> set[str]:
    """Which of the shared tables of 0.x exist on ``alias``."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        return set(TABLES) & set(connection.introspection.table_names(cursor))


def find_applications(alias: str, present: set[str]) -> dict[str, LegacyApplication]:
    """Every application with rows in the shared tables on ``alias``."""
    sql = LegacySQL(connections[alias])
    counts: dict[str, list[int]] = {}
    with connections[alias].cursor() as cursor:
        cursor.execute(sql.applications(present))
        for name, events, snapshots in cursor.fetchall():
            total = counts.setdefault(name, [0, 0])
            total[0] += events
            total[1] += snapshots
        found = {}
        for name, (events, snapshots) in sorted(counts.items()):
            positions: dict[str, int] = {}
            if TRACKING_TABLE in present:
                cursor.execute(sql.positions, [name])
                positions = dict(cursor.fetchall())
            found[name] = LegacyApplication(name, events, snapshots, positions)
    return found


class ApplicationCopy:
    """Copies one application from the shared tables into its own."""

    def __init__(
        self,
        application: LegacyApplication,
        *,
        legacy_alias: str,
        tables: ApplicationTables,
        alias: str,
        schema: str | None,
        dialect: Dialect,
        batch_size: int = DEFAULT_BATCH_SIZE,
        commit_each_batch: bool = False,
    ) -> None:
        self.application = application
        self.commit_each_batch = commit_each_batch
        self.name = application.name
        self.legacy_alias = legacy_alias
        self.tables = tables
        self.alias = alias
        self.schema = schema
        self.dialect = dialect
        self.batch_size = batch_size
        self.legacy = LegacySQL(connections[legacy_alias])
        self.sql: CopySQL = COPY_SQL[dialect.vendor](
            dialect, self.legacy, tables.events, tables.snapshots
        )
        # One database: the server copies. Two: no statement reaches both.
        self.same_database = alias == legacy_alias

    @property
    def where(self) -> str:
        schema = f", schema {self.schema!r}" if self.schema else ""
        return f"database {self.alias!r}{schema}"

    @property
    def kinds(self) -> list[tuple[Kind, str]]:
        """The tables the copy writes (tracking only for followers)."""
        kinds: list[tuple[Kind, str]] = [
            ("events", self.tables.events),
            ("snapshots", self.tables.snapshots),
        ]
        if self.application.positions:
            kinds.append(("tracking", self.tables.tracking))
        return kinds

    # What is there -------------------------------------------------------------

    @contextlib.contextmanager
    def _legacy_cursor(self) -> Iterator[CursorWrapper]:
        with connections[self.legacy_alias].cursor() as cursor:
            yield cursor

    @contextlib.contextmanager
    def _target_cursor(self) -> Iterator[CursorWrapper]:
        with connections[self.alias].cursor() as cursor:
            yield cursor

    def _exists(self, table: str) -> bool:
        with self._target_cursor() as cursor:
            return self.dialect.table_exists(cursor, table)

    def _one(self, cursor: CursorWrapper, statement: str, params: Any = ()) -> Any:
        cursor.execute(statement, list(params))
        return cursor.fetchone()

    def _target_events(self) -> tuple[int, int | None, int | None]:
        """Count, smallest and largest notification ID of the target's events."""
        if not self._exists(self.tables.events):
            return 0, None, None
        with self._target_cursor() as cursor:
            count, low, high = self._one(cursor, self.sql.target_events_summary)
        return int(count), low, high

    def _target_positions(self) -> dict[str, int]:
        if not self._exists(self.tables.tracking):
            return {}
        with self._target_cursor() as cursor:
            cursor.execute(self.sql.target_tracking(self.tables.tracking))
            rows = cursor.fetchall()
        return {name: n for name, n in rows if name != TRACKING_MARKER}

    def _target_snapshot_count(self) -> int:
        if not self._exists(self.tables.snapshots):
            return 0
        with self._target_cursor() as cursor:
            return int(self._one(cursor, self.sql.target_snapshots_summary)[0])

    def copied(self) -> Copied:
        """What the target already holds (for a dry run, or a resumed copy)."""
        positions = self._target_positions()
        return Copied(
            events=self._target_events()[0],
            snapshots=self._target_snapshot_count(),
            positions=sum(
                1
                for name, n in self.application.positions.items()
                if positions.get(name) == n
            ),
        )

    def _foreign(self, table: str, what: str) -> UpgradeError:
        return UpgradeError(
            f"Application {self.name!r}: table {table!r} on {self.where} holds "
            f"{what} that are not copies of its rows in the shared tables on "
            f"database {self.legacy_alias!r}, so the upgrade leaves it alone. "
            "If a process of this version wrote them, move them out of the way "
            "(or drop the table if they are not needed), then run the upgrade "
            "again; it never overwrites an application's tables."
        )

    def check_target(self) -> None:
        """Raise if the target tables hold rows that are not the copy's."""
        self._check_events()
        self._check_snapshots()
        positions = self._target_positions()
        for upstream, position in positions.items():
            if self.application.positions.get(upstream) != position:
                raise self._foreign(
                    self.tables.tracking,
                    f"a position in {upstream!r}'s notifications ({position})",
                )

    def _check_events(self) -> None:
        count, low, high = self._target_events()
        if count == 0:
            return
        # The copy's rows are the application's first events, up to the largest
        # copied: the same number, the same first and last.
        with self._legacy_cursor() as cursor:
            legacy = self._one(cursor, self.legacy.events_summary, [self.name, high])
            ends = [
                self._one(cursor, self.legacy.event_at, [self.name, n])
                for n in (low, high)
            ]
        with self._target_cursor() as cursor:
            copies = [
                self._one(cursor, self.sql.target_event_at, [n]) for n in (low, high)
            ]
        if (
            tuple(legacy) != (count, low, high)
            or None in ends
            or [self._key(r) for r in ends] != [self._key(r) for r in copies]
        ):
            raise self._foreign(self.tables.events, f"{count} events")

    def _check_snapshots(self) -> None:
        if not self._target_snapshot_count():
            return
        with self._target_cursor() as cursor:
            cursor.execute(self.sql.target_snapshot_keys)
            extra = {self._key(row) for row in cursor.fetchall()}
        for batch in self._legacy_batches(self.legacy.snapshot_keys):
            extra -= {self._key(row[1:]) for row in batch}
        if extra:
            raise self._foreign(self.tables.snapshots, f"{len(extra)} snapshots")

    @staticmethod
    def _key(row: Sequence[Any] | None) -> tuple[UUID, int] | None:
        return None if row is None else (as_uuid(row[0]), int(row[1]))

    def _legacy_batches(
        self, statement: str, after: int = 0
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Batches of rows whose first column orders them (an ID or ``uid``)."""
        while True:
            with self._legacy_cursor() as cursor:
                cursor.execute(statement, [self.name, after, self.batch_size])
                rows = cursor.fetchall()
            if not rows:
                return
            yield rows
            after = rows[-1][0]

    # Copying -------------------------------------------------------------------

    def create_tables(self) -> None:
        for kind, table in self.kinds:
            create_table(self.alias, self.dialect, kind, table)

    @contextlib.contextmanager
    def _batch(self) -> Iterator[CursorWrapper]:
        """A transaction on the target that commits one batch, writers held off."""
        with (
            self.dialect.write_lock(),
            transaction.atomic(using=self.alias),
            self._target_cursor() as cursor,
        ):
            for statement, params in self.sql.batch_statements():
                cursor.execute(statement, params)
            for statement in self.dialect.lock_table_statements(self.tables.events, 0):
                cursor.execute(statement)
            yield cursor

    def _write(self, cursor: CursorWrapper, statement: str, params: Any) -> None:
        if self.sql.many:
            cursor.executemany(statement, params)
        else:
            cursor.execute(statement, params)

    def run(self, on_rows: Callable[[int], object] = lambda n: None) -> str:
        """Copy what is not yet copied, verify, and describe what matched."""
        self.create_tables()
        self.check_target()
        self.copy_events(on_rows)
        self.copy_snapshots(on_rows)
        self.copy_positions()
        return self.verify()

    def copy_events(self, on_rows: Callable[[int], object]) -> None:
        count, _, last = self._target_events()
        last = last or 0
        if not self.same_database:
            for rows in self._legacy_batches(self.legacy.select_events, last):
                with self._batch() as cursor:
                    self._write(cursor, *self.sql.insert_events(rows))
                    last = rows[-1][0]
                    self._after_events(cursor, last)
                on_rows(len(rows))
        elif count == 0 and self.sql.defers_indexes and not self.commit_each_batch:
            last = self._copy_events_at_once(on_rows)
        else:
            for low, high in self._event_ranges(last):
                with self._batch() as cursor:
                    cursor.execute(self.sql.copy_events, [self.name, low, high])
                    copied = cursor.rowcount
                    self._after_events(cursor, high)
                on_rows(copied)
                last = high
        if last:
            # Once more, in a transaction that waits for the disk (the batches'
            # commits did not), so that what is verified next is durable.
            with transaction.atomic(using=self.alias), self._target_cursor() as c:
                self._after_events(c, last)

    def _copy_events_at_once(self, on_rows: Callable[[int], object]) -> int:
        """Fill the empty events table in one transaction, its indexes built
        after the rows (much faster than updating them row by row). A crash
        undoes it all, and the next run starts again."""
        last = 0
        with (
            self.dialect.write_lock(),
            transaction.atomic(using=self.alias),
            self._target_cursor() as cursor,
        ):
            for statement in self.dialect.lock_table_statements(self.tables.events, 0):
                cursor.execute(statement)
            for statement in self.sql.build_statements():
                cursor.execute(statement)
            cursor.execute(*self.sql.indexes)
            drops, creates = self.sql.index_statements(cursor.fetchall())
            for statement in drops:
                cursor.execute(statement)
            for low, high in self._event_ranges(0):
                cursor.execute(self.sql.copy_events, [self.name, low, high])
                on_rows(cursor.rowcount)
                last = high
            self._after_events(cursor, last)
            for statement in creates:
                cursor.execute(statement)
        return last

    def _event_ranges(self, after: int) -> Iterator[tuple[int, int]]:
        """Ranges (low, high] of the application's notification IDs after
        ``after``, each of at most one batch of events."""
        while True:
            with self._legacy_cursor() as cursor:
                row = self._one(
                    cursor,
                    self.legacy.event_id_bound,
                    [self.name, after, self.batch_size - 1],
                )
                if row is None:
                    row = self._one(
                        cursor, self.legacy.max_event_id, [self.name, after]
                    )
            high = None if row is None else row[0]
            if high is None:
                return
            yield after, high
            after = high

    def _after_events(self, cursor: CursorWrapper, last: int) -> None:
        for statement, params in self.sql.after_events(last):
            cursor.execute(statement, params)

    def copy_snapshots(self, on_rows: Callable[[int], object]) -> None:
        # Snapshots have no order the target keeps: every run goes through all
        # of them, and the target skips those it has.
        if self.same_database:
            low = 0
            while True:
                with self._legacy_cursor() as cursor:
                    row = self._one(
                        cursor,
                        self.legacy.snapshot_uid_bound,
                        [self.name, low, self.batch_size - 1],
                    )
                high = _MAX_UID if row is None else row[0]
                with self._batch() as cursor:
                    cursor.execute(self.sql.copy_snapshots, [self.name, low, high])
                    copied = max(cursor.rowcount, 0)
                on_rows(copied)
                if row is None:
                    return
                low = high
        else:
            for rows in self._legacy_batches(self.legacy.select_snapshots):
                with self._batch() as cursor:
                    statement, params = self.sql.insert_snapshots([r[1:] for r in rows])
                    self._write(cursor, statement, params)
                    copied = max(cursor.rowcount, 0)  # those not skipped
                on_rows(copied)

    def copy_positions(self) -> None:
        """Each upstream's position, as the largest tracked notification ID."""
        if not self.application.positions:
            return
        present = self._target_positions()
        with self._batch() as cursor:
            for upstream, position in sorted(self.application.positions.items()):
                if upstream not in present:
                    cursor.execute(
                        self.sql.insert_tracking(self.tables.tracking),
                        [upstream, position],
                    )

    # Verifying -----------------------------------------------------------------

    def _legacy_summary(self) -> Summary:
        with self._legacy_cursor() as cursor:
            count, _, high = self._one(
                cursor, self.legacy.events_summary, [self.name, _MAX_UID]
            )
            last = self._one(cursor, self.legacy.last_event, [self.name])
            snapshots = self._one(cursor, self.legacy.count_snapshots, [self.name])
            last_snapshot = self._one(cursor, self.legacy.last_snapshot, [self.name])
            positions: dict[str, int] = {}
            if self.application.positions:  # else maybe no tracking table
                cursor.execute(self.legacy.positions, [self.name])
                positions = dict(cursor.fetchall())
        return Summary(
            int(count),
            high,
            self._key(last),
            int(snapshots[0]),
            self._key(last_snapshot),
            positions,
        )

    def _copy_summary(self) -> Summary:
        count, _, high = self._target_events()
        with self._target_cursor() as cursor:
            last = None
            if high is not None:
                last = self._one(cursor, self.sql.target_event_at, [high])
            last_snapshot = None
            if self._exists(self.tables.snapshots):
                last_snapshot = self._one(cursor, self.sql.target_last_snapshot)
        return Summary(
            count,
            high,
            self._key(last),
            self._target_snapshot_count(),
            self._key(last_snapshot),
            self._target_positions(),
        )

    def verify(self) -> str:
        """Raise unless counts and last rows match the shared tables'."""
        legacy, copy = self._legacy_summary(), self._copy_summary()
        mismatches = [
            f"{what}: {theirs} in the shared tables, {ours} in {table!r}"
            for what, table, theirs, ours in (
                ("events", self.tables.events, legacy.events, copy.events),
                ("snapshots", self.tables.snapshots, legacy.snapshots, copy.snapshots),
                ("positions", self.tables.tracking, legacy.positions, copy.positions),
            )
            if theirs != ours
        ]
        if mismatches:
            msg = (
                f"Application {self.name!r}: the copy on {self.where} does not match "
                f"the shared tables on database {self.legacy_alias!r} ("
                + "; ".join(mismatches)
                + "). Are processes of eventsourcing-django 0.x still writing? "
                "Stop them and run the upgrade again: it goes on from where it is."
            )
            raise UpgradeError(msg)
        return legacy.describe()


@dataclass(frozen=True)
class Summary:
    """What verification compares: counts, last rows and positions."""

    count: int
    high: int | None
    last: tuple[UUID, int] | None
    snapshot_count: int
    last_snapshot: tuple[UUID, int] | None
    positions: dict[str, int]

    @property
    def events(self) -> str:
        return f"{self.count} up to notification {self.high}, the last {self.last}"

    @property
    def snapshots(self) -> str:
        return f"{self.snapshot_count}, the last {self.last_snapshot}"

    def describe(self) -> str:
        ending = f", the last ({self.last[0]}, {self.last[1]})" if self.last else ""
        n = len(self.positions)
        return (
            f"{self.count} events{ending}; {self.snapshot_count} snapshots; "
            f"{n} tracking {'position' if n == 1 else 'positions'}"
        )


@dataclass
class Plan:
    """The applications to copy from the shared tables on ``alias``."""

    alias: str
    present: set[str]
    #: Every application in the shared tables, chosen or not.
    found: dict[str, LegacyApplication]
    copies: list[ApplicationCopy] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def plan_upgrade(
    alias: str,
    application_names: Sequence[str] = (),
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    commit_each_batch: bool = False,
) -> Plan:
    """Find the applications on ``alias`` and place each (no application names:
    all of them). Raises :class:`UpgradeError` before anything is written.

    ``commit_each_batch``: on PostgreSQL, an empty events table is otherwise
    filled in one transaction, its indexes built at the end; a crash then undoes
    the whole copy instead of keeping the batches before it."""
    if alias not in connections:
        msg = (
            f"Database {alias!r} is not in settings.DATABASES; use one of: "
            f"{', '.join(map(repr, connections))}."
        )
        raise UpgradeError(msg)
    if batch_size < 1:
        msg = f"The batch size must be 1 or more, got {batch_size}."
        raise UpgradeError(msg)
    _check_upgradable(alias)
    present = shared_tables_on(alias)
    if EVENTS_TABLE not in present:
        msg = (
            f"Database {alias!r} has no table {EVENTS_TABLE!r} of "
            "eventsourcing-django 0.x: nothing to upgrade there. Name the "
            "database that has it with --database."
        )
        raise NoSharedTablesError(msg)
    missing = [t for t in TABLES if t not in present]
    if missing:
        msg = (
            f"Database {alias!r} has {EVENTS_TABLE!r} but not "
            f"{', '.join(map(repr, missing))}, which the migration of "
            "eventsourcing-django 0.x made with it. Restore them (from a backup), "
            "or create them empty as that migration did, then run the upgrade again."
        )
        raise UpgradeError(msg)
    found = find_applications(alias, present)
    plan = Plan(alias=alias, present=present, found=found)
    chosen = [_found_name(n, found, alias) for n in application_names] or list(found)
    folded: dict[str, list[str]] = {}
    for name in found:
        folded.setdefault(name.lower(), []).append(name)
    for name in dict.fromkeys(chosen):
        others = [n for n in folded[name.lower()] if n != name]
        if others:
            reason = (
                f"its tables would be shared with application {others[0]!r} "
                "(table names are lower-cased); rename one of them in the shared "
                "tables first"
            )
            plan.skipped.append(Skipped(name, reason))
            continue
        placed = _place(found[name], alias, batch_size, commit_each_batch)
        if isinstance(placed, Skipped):
            plan.skipped.append(placed)
        else:
            plan.copies.append(placed)
    return plan


def _check_upgradable(alias: str) -> None:
    """Refuse, before any SQL, a database the upgrade has no statements for."""
    vendor = connections[alias].vendor
    if vendor not in COPY_SQL:
        msg = (
            f"Database {alias!r} is {vendor}: upgrading from eventsourcing-django "
            f"0.x is supported on {' and '.join(sorted(COPY_SQL))} only. Upgrade "
            "there, or recreate the applications' events on this database."
        )
        raise UpgradeError(msg)


def _found_name(name: str, found: dict[str, LegacyApplication], alias: str) -> str:
    if name in found:
        return name
    matches = [n for n in found if n.lower() == name.lower()]
    if len(matches) == 1:
        return matches[0]
    msg = (
        f"Application {name!r} has no rows in the shared tables on database "
        f"{alias!r}. Applications found there: "
        f"{', '.join(map(repr, found)) or 'none'}."
    )
    raise UpgradeError(msg)


def _place(
    application: LegacyApplication,
    legacy_alias: str,
    batch_size: int,
    commit_each_batch: bool,
) -> ApplicationCopy | Skipped:
    """Where the application's tables go: the alias and schema our routers and
    settings give it, as its recorders will find them."""
    name = application.name
    try:
        tables = ApplicationTables.for_application(name)
        schema = schema_for_application(name)
        if schema is not None:
            check_schema_name(schema)
        alias = alias_for_application(name, schema=schema)
    except ValueError as e:
        return Skipped(name, str(e))
    if alias not in connections:
        msg = (
            f"Database {alias!r} of application {name!r} (from the routers) is "
            "not in settings.DATABASES."
        )
        raise UpgradeError(msg)
    schema = schema or tenant_schema(connections[alias])
    own = {tables.events, tables.snapshots, tables.tracking}
    if alias == legacy_alias and schema is None and own & set(TABLES):
        reason = (
            f"its table {sorted(own & set(TABLES))[0]!r} would be one of the "
            "shared tables; give it a schema (EVENTSOURCING_SCHEMAS) or another "
            "database (EVENTSOURCING_DATABASES)"
        )
        return Skipped(name, reason)
    try:
        dialect = dialect_for(connections[alias], schema=schema)
    except NotSupportedError as e:
        raise UpgradeError(f"Application {name!r}: {e}.") from e
    _check_upgradable(alias)
    return ApplicationCopy(
        application,
        legacy_alias=legacy_alias,
        tables=tables,
        alias=alias,
        schema=schema,
        dialect=dialect,
        batch_size=batch_size,
        commit_each_batch=commit_each_batch,
    )


def drop_legacy_tables(plan: Plan, verified: Sequence[str]) -> list[str]:
    """Drop the shared tables, if every application in them was verified."""
    left = [name for name in plan.found if name not in verified]
    if left:
        msg = (
            "The shared tables were not dropped: they still hold applications "
            f"that were not copied and verified in this run: "
            f"{', '.join(map(repr, left))}. Upgrade them too (run the upgrade "
            "without application names), or leave out --drop-legacy."
        )
        raise UpgradeError(msg)
    connection = connections[plan.alias]
    dropped = [t for t in TABLES if t in plan.present]
    with transaction.atomic(using=plan.alias), connection.cursor() as cursor:
        for statement in LegacySQL(connection).drop_tables(plan.present):
            cursor.execute(statement)
    return dropped
