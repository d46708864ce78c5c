"""Benchmark eventsourcing_django against the eventsourcing library's own recorders.

One run measures this package's recorders, which go through Django's database
connections, and the library's native recorders (``eventsourcing.postgres`` on
psycopg 3, ``eventsourcing.sqlite``) on the same machine; on MariaDB, which the
library does not serve, ours alone (``--database mariadb``, the server at
``--mariadb-host``/``--mariadb-port`` as ``--mariadb-user``, 127.0.0.1, 3306,
root by default; a password from ``MYSQL_PWD``). Two more sides (issue 16):
on PostgreSQL the *limit* of our design, our statements sent by psycopg 3 alone
on a dedicated connection (``bench_limit.py``); on SQLite ours with Django's
default settings (no ``OPTIONS``, column "ours, Django defaults") beside ours
with the options the README recommended before (WAL, ``IMMEDIATE``). Each
side starts every round on fresh storage of its own (a newly created
PostgreSQL database, or a new directory of SQLite files, one file per
measurement, each Django side through an alias of its own), and the sides are
measured side by side, each in a process of its own (as a user's process
would run it: no other side's code or objects; the writers run in processes of
their own anyway): within each measurement the work of every side is cut
into slices (``--slices``, at most 20, of at least 50 calls each; passes for
``select_notifications``, phases for the writers) and the sides take turns
slice by slice, in an order that rotates every slice, so that what the machine
does meanwhile (the disk's
flushes, checkpoints, other processes) weighs on all sides alike. All sides are
built as users build them, through ``PERSISTENCE_MODULE`` (``eventsourcing_django``
with ``DJANGO_DB_ALIAS``, ``eventsourcing.postgres`` / ``eventsourcing.sqlite``,
or ``bench_limit:LimitFactory``), and all use psycopg 3 on PostgreSQL. Measured,
for each round and side:

* ``insert_events`` throughput (events/s), batches of 1, 10 and 100 events of a
  200-byte state, one writer;
* ``select_events`` latency for one aggregate of 100 events (median call, µs);
* ``select_notifications`` throughput: 10,000 notifications in pages of 500;
* one application writing alone in one process, and four applications (four
  tables) writing at once in four processes: total events/s and the scaling
  (four processes per side, idle outside their side's phases: every side
  with 1 writer, then with 4, then 4 and 1 again in the reverse order of
  sides, so that a drift in the machine's load weighs on all alike);
* an ``Application`` round trip: ``repository.get``, one new event, ``save``;
* on PostgreSQL, requests per second through Django's threaded server with
  ``CONN_MAX_AGE`` 0 and 60 (``benchmarks/bench_http.py``; ``--measure http``
  measures only this).
* ours only: upgrading from eventsourcing-django 0.x, events/s of
  ``eventsourcing_upgrade``'s copy and verification of one application's
  1,000,000 events of 200-byte states (aggregates of 10 events, random IDs on
  PostgreSQL) from the shared
  ``stored_events`` table, made with 0.x's DDL, into its own table on the same
  database (``--measure upgrade`` measures only this).
* ours only: projections, events/s of the ``WorldSummary`` example
  (``tests/testapp/projections.py``) over 100,000 events (worlds of 10 events,
  saved 10 worlds at a time, whose rate is printed beside): catching up in pages
  (``EVENTSOURCING_PROJECTION_BATCH_SIZE``, default 500), rebuilding (emptied,
  then caught up again, as ``rebuild_projection`` does), and one transaction per
  event over the first 5,000 events, as before pages (``--measure projections``
  measures only this).

The table shows, per measurement, the median over rounds with the range
(min-max) for each side, the ratios ours/native, ours/limit (PostgreSQL) and
defaults/native (SQLite), each the median of the paired ratios of the two
sides' slices over all rounds (slice ``i`` of both ran within milliseconds of
each other; a stall in one slice does not move a median), and the project's
targets, met or missed. It is a benchmark,
not a test: nothing fails on timings.

Run it from the repository root (it measures the ``eventsourcing_django`` found
next to this directory, and prints the path it imported)::

    python benchmarks/bench.py --database postgres --rounds 5
    python benchmarks/bench.py --database sqlite --rounds 5
    python benchmarks/bench.py --database all --rounds 5

PostgreSQL is reached at ``--pg-host``/``--pg-port`` as ``--pg-user`` (defaults
127.0.0.1, 5432, postgres; a password, if needed, comes from ``PGPASSWORD``). That
user must be allowed to create databases: each round creates one per side,
named ``esdj_bench_<pid>_<round>_<side>``, and drops it when the round ends, or
when the run fails or is interrupted. ``--scale`` multiplies the number of events
of every measurement (e.g. 0.2 for a quick look).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import itertools
import multiprocessing
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Literal, TypeVar
from uuid import UUID, uuid4

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import (
    ApplicationRecorder,
    InfrastructureFactory,
    StoredEvent,
)
from eventsourcing.utils import Environment

REPO_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")

Side = Literal["ours", "native", "limit", "defaults"]
Vendor = Literal["postgres", "sqlite", "mariadb"]
SIDES: tuple[Side, Side] = ("ours", "native")
#: The sides measured per vendor (see sides_for).
EXTRA_SIDES: dict[str, tuple[Side, ...]] = {
    # Our statements sent by psycopg alone (bench_limit.py).
    "postgres": ("limit",),
    # Ours on a SQLite alias with Django's default settings (no OPTIONS).
    "sqlite": ("defaults",),
}
#: The sides that go through Django (the others build no Django settings).
DJANGO_SIDES: tuple[Side, ...] = ("ours", "defaults")
SIDE_TITLES = {
    "ours": "ours",
    "native": "library",
    "limit": "psycopg limit",
    "defaults": "ours, Django defaults",
}
VENDORS: tuple[Vendor, ...] = ("postgres", "sqlite", "mariadb")
VENDOR_TITLES = {"postgres": "PostgreSQL", "sqlite": "SQLite", "mariadb": "MariaDB"}
#: The library has no recorders for MariaDB: ours alone is measured there.
NATIVE_VENDORS = ("postgres", "sqlite")

TOPIC = "benchmarks.bench:SomethingHappened"
STATE = bytes(i % 256 for i in range(7, 207))  # 200 bytes


# Configuration ------------------------------------------------------------------


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    password: str

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname,
            autocommit=True,
        )

    def django_settings(self, dbname: str) -> dict[str, Any]:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": dbname,
            "HOST": self.host,
            "PORT": str(self.port),
            "USER": self.user,
            "PASSWORD": self.password,
        }

    def limit_env(self, dbname: str) -> dict[str, str]:
        dsn = psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname,
        )
        return {"PERSISTENCE_MODULE": "bench_limit:LimitFactory", "LIMIT_DSN": dsn}

    def native_env(self, dbname: str) -> dict[str, str]:
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            # One connection, like Django's one connection per thread; the
            # library's default keeps five open, which a single writer never uses.
            "POSTGRES_POOL_SIZE": "1",
        }


@dataclass(frozen=True)
class MariaDBServer:
    host: str
    port: int
    user: str
    password: str

    def execute(self, statement: str) -> None:
        import MySQLdb

        connection = MySQLdb.connect(
            host=self.host, port=self.port, user=self.user, password=self.password
        )
        try:
            connection.cursor().execute(statement)
        finally:
            connection.close()

    def django_settings(self, dbname: str) -> dict[str, Any]:
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": dbname,
            "HOST": self.host,
            "PORT": str(self.port),
            "USER": self.user,
            "PASSWORD": self.password,
            "OPTIONS": {"charset": "utf8mb4"},
        }


def sqlite_default_settings(path: str) -> dict[str, Any]:
    """What ``django-admin startproject`` gives: no OPTIONS."""
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}


def sqlite_django_settings(path: str) -> dict[str, Any]:
    """The options the README recommended before issue 16."""
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does (``--scale`` multiplies the events)."""

    #: batch size -> events inserted per measurement
    inserts: tuple[tuple[int, int], ...]
    select_events_calls: int
    notifications: int
    notifications_page: int
    notifications_passes: int
    app_aggregates: int
    app_commands: int
    writer_events: int
    writer_batch: int
    writers: int
    upgrade_events: int
    projection_events: int
    projection_per_event: int
    #: Into how many slices the inserts and the round trips of each side are
    #: cut, the sides taking turns slice by slice (see ``Baton``).
    slices: int

    @classmethod
    def scaled(cls, scale: float, slices: int = 20) -> Sizes:
        def n(count: int, floor: int = 10) -> int:
            return max(floor, round(count * scale))

        return cls(
            inserts=((1, n(2_000)), (10, n(5_000, 100)), (100, n(10_000, 1_000))),
            select_events_calls=n(500),
            notifications=n(10_000, 1_000),
            notifications_page=500,
            notifications_passes=3,
            app_aggregates=100,
            app_commands=n(1_000, 100),
            writer_events=n(10_000, 100),
            writer_batch=10,
            writers=4,
            upgrade_events=n(1_000_000, 1_000),
            projection_events=n(100_000, 1_000),
            projection_per_event=n(5_000, 100),
            slices=slices,
        )


ROWS: tuple[tuple[str, str, str], ...] = (
    # key, label, unit
    ("insert_1", "insert_events, batch 1", "events/s"),
    ("insert_10", "insert_events, batch 10", "events/s"),
    ("insert_100", "insert_events, batch 100", "events/s"),
    ("select_events", "select_events, 100 events", "µs/call"),
    ("select_notifications", "select_notifications, pages of 500", "notif/s"),
    ("app_round_trip", "Application get + event + save", "cmds/s"),
    ("writers_1", "1 application, 1 process", "events/s"),
    ("writers_n", "4 applications, 4 processes", "events/s"),
    ("scaling", "scaling, 4 processes / 1", "x"),
)


@dataclass(frozen=True)
class Target:
    """A target of the project: on the ratio ours/native, or on ours alone."""

    bound: float
    on_ratio: bool = True
    #: Whether the bound is a maximum (latencies) rather than a minimum.
    upper: bool = False

    def describe(self) -> str:
        sign = "<=" if self.upper else ">="
        return f"{'ratio' if self.on_ratio else 'ours'} {sign} {self.bound:g}"

    def met(self, value: float) -> bool:
        return value <= self.bound if self.upper else value >= self.bound


#: The upgrade has no native counterpart: a target on ours alone.
UPGRADE_TARGETS: dict[Vendor, Target | None] = {
    "postgres": Target(200_000, on_ratio=False),
    "sqlite": None,
    "mariadb": None,
}

#: Projections have no native counterpart: targets on ours alone, and on the
#: ratio to one transaction per event.
PROJECTION_TARGETS: dict[Vendor, dict[str, Target]] = {
    "postgres": {
        "catch_up": Target(10_000, on_ratio=False),
        "rebuild": Target(10_000, on_ratio=False),
        "catch_up_x": Target(10, on_ratio=False),
        "rebuild_x": Target(10, on_ratio=False),
    },
    "sqlite": {},
}

#: The application whose rows the upgrade measurement copies, per vendor (the
#: router sends it to the vendor's alias).
UPGRADE_APPLICATIONS: dict[Vendor, str] = {
    "postgres": "UpgradePostgres",
    "sqlite": "UpgradeSQLite",
}

TARGETS: dict[Vendor, dict[str, Target]] = {
    "postgres": {
        "insert_1": Target(0.9),
        "insert_10": Target(1.0),
        "insert_100": Target(1.0),
        "select_events": Target(1.1, upper=True),
        "select_notifications": Target(0.9),
        "app_round_trip": Target(0.9),
        "scaling": Target(1.6, on_ratio=False),
    },
    "sqlite": {
        "insert_100": Target(0.8),
        "select_events": Target(1.2, upper=True),
    },
    # No native recorders to compare with: targets on ours alone.
    "mariadb": {
        "insert_100": Target(30_000, on_ratio=False),
        "scaling": Target(1.5, on_ratio=False),
    },
}


# Django ---------------------------------------------------------------------------


def configure_django(databases: dict[str, dict[str, Any]]) -> None:
    """Configure Django in this process, with ``databases`` besides a dummy default."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        SECRET_KEY="eventsourcing-django-benchmark",
        DATABASES={"default": {}, **databases},
        # The projection example's read model (its table is made by the
        # measurement, not by migrations).
        INSTALLED_APPS=["eventsourcing_django", "tests.testapp"],
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        # For the upgrade measurement; the others name their alias in the env.
        DATABASE_ROUTERS=["eventsourcing_django.routers.EventSourcingRouter"],
        EVENTSOURCING_DATABASES={
            UPGRADE_APPLICATIONS["postgres"]: "postgres",
            UPGRADE_APPLICATIONS["sqlite"]: "sqlite",
        },
    )
    django.setup()


def point_alias(alias: str, name: str) -> None:
    """Close the connection of ``alias`` and point it at database ``name``."""
    from django.db import connections

    connection = connections[alias]
    connection.close()
    connection.settings_dict["NAME"] = name


def point_sqlite_options(alias: str, settings_dict: dict[str, Any]) -> None:
    """Give the (closed) SQLite ``alias`` the OPTIONS of ``settings_dict``."""
    from django.db import connections

    connection = connections[alias]
    connection.close()
    connection.settings_dict["OPTIONS"] = dict(settings_dict.get("OPTIONS", {}))


def close_alias(alias: str) -> None:
    from django.db import connections

    connections[alias].close()


# Storage: fresh for every round and side --------------------------------------------


class Storage:
    """Fresh storage of one side for one round, and the environments that use it."""

    vendor: Vendor
    alias: str

    def __init__(self, side: Side) -> None:
        self.side = side

    def env(self, file: str) -> dict[str, str]:
        """The factory environment for an application stored in ``file``.

        ``file`` only matters to SQLite, where it names the database file; on
        PostgreSQL every application of the round shares the round's database.
        """
        raise NotImplementedError

    def django_databases(self, file: str) -> dict[str, dict[str, Any]]:
        """Django's DATABASES for a process that stores ours in ``file``."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class PostgresStorage(Storage):
    vendor = "postgres"
    alias = "postgres"

    def __init__(self, side: Side, server: PgServer, dbname: str) -> None:
        super().__init__(side)
        self.server = server
        self.dbname = dbname
        with server.connect() as admin:
            admin.execute(f'CREATE DATABASE "{dbname}"')
        if side == "ours":
            point_alias(self.alias, dbname)

    def env(self, file: str) -> dict[str, str]:
        if self.side == "native":
            return self.server.native_env(self.dbname)
        if self.side == "limit":
            return self.server.limit_env(self.dbname)
        return {
            "PERSISTENCE_MODULE": "eventsourcing_django",
            "DJANGO_DB_ALIAS": "postgres",
        }

    def django_databases(self, file: str) -> dict[str, dict[str, Any]]:
        return {self.alias: self.server.django_settings(self.dbname)}

    def close(self) -> None:
        if self.side == "ours":
            close_alias(self.alias)
        drop_database(self.server, self.dbname)


def drop_database(server: PgServer, dbname: str) -> None:
    with server.connect() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


class MariaDBStorage(Storage):
    vendor = "mariadb"
    alias = "mariadb"

    def __init__(self, side: Side, server: MariaDBServer, dbname: str) -> None:
        super().__init__(side)
        self.server = server
        self.dbname = dbname
        server.execute(
            f"CREATE DATABASE `{dbname}` CHARACTER SET utf8mb4 "
            "COLLATE utf8mb4_unicode_ci"
        )
        point_alias(self.alias, dbname)

    def env(self, file: str) -> dict[str, str]:
        return {
            "PERSISTENCE_MODULE": "eventsourcing_django",
            "DJANGO_DB_ALIAS": "mariadb",
        }

    def django_databases(self, file: str) -> dict[str, dict[str, Any]]:
        return {self.alias: self.server.django_settings(self.dbname)}

    def close(self) -> None:
        close_alias(self.alias)
        self.server.execute(f"DROP DATABASE IF EXISTS `{self.dbname}`")


class SQLiteStorage(Storage):
    vendor = "sqlite"
    alias = "sqlite"
    #: The alias of the side with Django's defaults: the sides of a round are
    #: measured side by side, each through its own alias.
    defaults_alias = "sqlite_defaults"

    def __init__(self, side: Side, directory: Path) -> None:
        super().__init__(side)
        self.directory = directory
        if side == "defaults":
            self.alias = self.defaults_alias
        directory.mkdir()

    def path(self, file: str) -> str:
        return str(self.directory / f"{file}.sqlite3")

    def env(self, file: str) -> dict[str, str]:
        if self.side == "native":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.path(file),
            }
        point_alias(self.alias, self.path(file))
        point_sqlite_options(self.alias, self.django_databases(file)[self.alias])
        return {
            "PERSISTENCE_MODULE": "eventsourcing_django",
            "DJANGO_DB_ALIAS": self.alias,
        }

    def django_databases(self, file: str) -> dict[str, dict[str, Any]]:
        if self.side == "defaults":
            return {self.alias: sqlite_default_settings(self.path(file))}
        return {self.alias: sqlite_django_settings(self.path(file))}

    def close(self) -> None:
        if self.side in DJANGO_SIDES:
            close_alias(self.alias)
        shutil.rmtree(self.directory, ignore_errors=True)


# Workloads --------------------------------------------------------------------------


def stored_events(
    originator_id: UUID, count: int, first_version: int = 1
) -> list[StoredEvent]:
    return [
        StoredEvent(
            originator_id=originator_id,
            originator_version=version,
            topic=TOPIC,
            state=STATE,
        )
        for version in range(first_version, first_version + count)
    ]


def batches_of(batch: int, total: int) -> list[list[StoredEvent]]:
    """``total`` events in batches of ``batch``, each batch a new aggregate."""
    return [stored_events(uuid4(), batch) for _ in range(max(1, total // batch))]


def close_django_connections() -> None:
    """Close this process's Django connections, if Django is set up here.

    Every measurement's factory opens connections of its own and closes them
    (the library's pool, the limit's connection); ours run on Django's
    connection, which outlives the factory, so without this ours would be the
    one side whose server session is carried from measurement to measurement
    (docs/profile.md: in these runs that cost ours 6-8 % on inserts of ten).
    """
    from django.conf import settings

    if settings.configured:
        from django.db import connections

        connections.close_all()


@contextlib.contextmanager
def application_recorder(
    name: str, env: dict[str, str]
) -> Iterator[ApplicationRecorder]:
    factory = InfrastructureFactory.construct(Environment(name, env))
    try:
        yield factory.application_recorder()
    finally:
        factory.close()
        close_django_connections()


def timed_inserts(
    recorder: ApplicationRecorder, batches: Sequence[list[StoredEvent]]
) -> float:
    """Insert ``batches`` one transaction each; return the seconds taken."""
    insert = recorder.insert_events
    started = time.perf_counter()
    for batch in batches:
        insert(batch)
    return time.perf_counter() - started


#: The fewest calls a slice holds: a side's first calls after another side's
#: slice run slower (its process and its server session were idle), which in
#: slices of 5 or 20 calls showed as a 10 % gap between ours and the limit that
#: slices of 50 to 100 calls do not show (docs/profile.md).
MIN_CALLS_PER_SLICE = 50


def sliced(items: Sequence[T], slices: int) -> list[Sequence[T]]:
    """``items`` cut into at most ``slices`` consecutive parts of (nearly) equal
    length, each of at least ``MIN_CALLS_PER_SLICE`` items if there are that
    many."""
    slices = max(1, min(slices, len(items) // MIN_CALLS_PER_SLICE))
    bounds = [round(i * len(items) / slices) for i in range(slices + 1)]
    return [items[a:b] for a, b in itertools.pairwise(bounds)]


@dataclass(frozen=True)
class Measured:
    """One side's figure of one measurement in one round, and the figures of
    its slices in the same unit (see ``Baton``)."""

    value: float
    slices: tuple[float, ...]


class Baton:
    """The turns of one side, measured in a process of its own: before each
    block of slices it tells the round's process how many there are, then runs
    each slice when that process says so, and returns the seconds of each
    (``run_sides_apart`` lets slice ``i`` of every side run before slice
    ``i + 1`` of any, in an order that rotates every slice).

    A slice takes tens of milliseconds, so what changes on the machine from
    moment to moment (the disk's flushes, another process's work) falls on
    every side alike, which a side-after-side run could not promise; and the
    ratio of two sides is the median of their slices' ratios, which a stall in
    one slice (a checkpoint) does not move.
    """

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    def __call__(self, slices: int, run_slice: Callable[[int], float]) -> list[float]:
        self.pipe.send(("block", slices))
        seconds: list[float] = []
        for i in range(slices):
            if self.pipe.recv() != "go":
                raise RuntimeError("the round's process sent something else than go")
            seconds.append(run_slice(i))
            self.pipe.send(("ran",))
        return seconds


def rates(counts: Sequence[float], seconds: Sequence[float]) -> Measured:
    """Things per second, in all and per slice."""
    return Measured(
        value=sum(counts) / sum(seconds),
        slices=tuple(c / s for c, s in zip(counts, seconds, strict=True)),
    )


def measure_inserts(
    storage: Storage, batch: int, total: int, slices: int, baton: Baton
) -> Measured:
    """Events per second, inserting ``total`` events in batches of ``batch``."""
    name = f"Insert{batch}"
    with application_recorder(name, storage.env(name)) as recorder:
        timed_inserts(recorder, batches_of(batch, 10 * batch))  # warm up
        parts = sliced(batches_of(batch, total), slices)
        gc.collect()
        seconds = baton(len(parts), lambda i: timed_inserts(recorder, parts[i]))
    return rates([sum(map(len, part)) for part in parts], seconds)


def measure_select_events(
    storage: Storage, calls: int, slices: int, baton: Baton
) -> Measured:
    """Median microseconds of ``select_events`` for an aggregate of 100 events
    (a slice's figure: its median call)."""
    name = "SelectEvents"
    with application_recorder(name, storage.env(name)) as recorder:
        originator_id = uuid4()
        recorder.insert_events(stored_events(originator_id, 100))
        for _ in range(20):  # warm up
            recorder.select_events(originator_id)
        parts = sliced(range(calls), slices)
        timings: list[list[float]] = []

        def run_slice(i: int) -> float:
            select = recorder.select_events
            part: list[float] = []
            for _ in parts[i]:
                started = time.perf_counter()
                select(originator_id)
                part.append(time.perf_counter() - started)
            timings.append(part)
            return sum(part)

        gc.collect()
        baton(len(parts), run_slice)
    return Measured(
        value=statistics.median(t for part in timings for t in part) * 1e6,
        slices=tuple(statistics.median(part) * 1e6 for part in timings),
    )


def measure_select_notifications(
    storage: Storage, total: int, page: int, passes: int, baton: Baton
) -> Measured:
    """Notifications/s reading ``total`` in pages of ``page`` (median pass; a
    pass is a slice)."""
    name = "SelectNotifications"
    with application_recorder(name, storage.env(name)) as recorder:
        for batch in batches_of(100, total):
            recorder.insert_events(batch)
        per_pass: list[float] = []

        def one_pass(i: int) -> float:
            started = time.perf_counter()
            start, read = 1, 0
            while True:
                notifications = recorder.select_notifications(start, page)
                if not notifications:
                    break
                read += len(notifications)
                start = notifications[-1].id + 1
            if i:  # the first pass warms up
                per_pass.append(read / (time.perf_counter() - started))
            return 0.0

        gc.collect()
        baton(passes + 1, one_pass)
    return Measured(statistics.median(per_pass), tuple(per_pass))


class Counter(Aggregate):
    """A small aggregate for the application round trip."""

    def __init__(self) -> None:
        self.count = 0

    @event("Incremented")
    def increment(self) -> None:
        self.count += 1


class BenchApp(Application[UUID]):
    pass


def measure_app_round_trip(
    storage: Storage, aggregates: int, commands: int, slices: int, baton: Baton
) -> Measured:
    """Commands per second: ``repository.get``, one event, ``save``."""
    app = BenchApp(env=storage.env("BenchApp"))
    try:
        ids = []
        for _ in range(aggregates):
            counter = Counter()
            app.save(counter)
            ids.append(counter.id)
        for aggregate_id in ids:  # warm up
            app.repository.get(aggregate_id)
        parts = sliced(range(commands), slices)

        def run_slice(i: int) -> float:
            started = time.perf_counter()
            for n in parts[i]:
                counter: Counter = app.repository.get(ids[n % aggregates])
                counter.increment()
                app.save(counter)
            return time.perf_counter() - started

        gc.collect()
        seconds = baton(len(parts), run_slice)
    finally:
        app.close()
        close_django_connections()
    return rates(list(map(len, parts)), seconds)


# Writers in processes ----------------------------------------------------------------


@dataclass(frozen=True)
class WriterSpec:
    index: int
    app_name: str
    env: dict[str, str]
    #: Django's DATABASES for ours, None for the other sides
    django_databases: dict[str, dict[str, Any]] | None
    events: int
    batch: int
    #: The phases of the run's schedule that this process writes in.
    phases: tuple[int, ...]


def writer_process(spec: WriterSpec, starts: Sequence[Any], reports: Any) -> None:
    """Write ``spec.events`` in each phase it takes part in, when told to start.

    Reports ("ready", phase), then ("span", phase, started, ended, events), or
    ("error", traceback) and stops.
    """
    try:
        if spec.django_databases is not None:
            configure_django(spec.django_databases)
        with application_recorder(spec.app_name, spec.env) as recorder:
            timed_inserts(recorder, batches_of(spec.batch, 10 * spec.batch))  # warm up
            # All made now, so an idle writer uses no CPU in another's phase.
            work = {phase: batches_of(spec.batch, spec.events) for phase in spec.phases}
            for phase, batches in work.items():
                reports.put(("ready", phase))
                if not starts[phase].wait(timeout=600):
                    raise TimeoutError(f"phase {phase} did not start")
                started = time.perf_counter()  # CLOCK_MONOTONIC: one clock for all
                for batch in batches:
                    recorder.insert_events(batch)
                ended = time.perf_counter()
                reports.put(("span", phase, started, ended, sum(map(len, batches))))
    except BaseException:
        reports.put(("error", traceback.format_exc()))
    finally:
        if spec.django_databases is not None:
            from django.db import connections

            connections.close_all()


class Inbox:
    """The reports of the writer processes, taken by kind and phase."""

    def __init__(self, reports: Any) -> None:
        self.reports = reports
        self.stash: list[tuple[Any, ...]] = []

    def take(self, kind: str, phase: int, count: int) -> list[tuple[Any, ...]]:
        taken: list[tuple[Any, ...]] = []
        while len(taken) < count:
            match = next(
                (r for r in self.stash if r[0] == kind and r[1] == phase), None
            )
            if match is not None:
                self.stash.remove(match)
                taken.append(match)
                continue
            report = self.reports.get(timeout=600)
            if report[0] == "error":
                raise RuntimeError("a writer process failed:\n" + report[1])
            self.stash.append(report)
        return taken


def writer_schedule(order: Sequence[Side], count: int) -> list[tuple[Side, int]]:
    """The phases (side, writers): every side alone with 1 writer, then with
    ``count``, then ``count`` and 1 again in the reverse order of sides, so that
    a drift in the machine's load or in the tables' sizes weighs on all alike."""
    forward, backward = list(order), list(reversed(order))
    return (
        [(side, 1) for side in forward]
        + [(side, count) for side in forward]
        + [(side, count) for side in backward]
        + [(side, 1) for side in backward]
    )


def measure_writers(
    storages: Mapping[Side, Storage], count: int, events: int, batch: int
) -> dict[Side, tuple[Measured, Measured]]:
    """Events/s of one application alone, and of ``count`` at once, a process
    each, for every side (see ``writer_schedule``); each result is the mean of
    its two phases.

    Each side has ``count`` processes, started at once and idle outside the
    side's phases. Ours gives each application its own tables. On SQLite all
    write one file, as applications sharing one Django database do (the native
    recorders share its one table: their SQLite recorder does not name tables
    after applications). The tables are created here first: the native
    PostgreSQL recorders fail with "tuple concurrently updated" when processes
    create them at once.
    """
    file = f"Writers{count}"
    names = [f"Writer{i}" for i in range(count)]
    schedule = writer_schedule(list(storages), count)
    specs = []
    for side, storage in storages.items():
        for name in names:
            with application_recorder(name, storage.env(file)):
                pass
        env = {**storage.env(file), "CREATE_TABLE": "no"}
        ours = storage.side in DJANGO_SIDES
        for index, name in enumerate(names):
            phases = tuple(
                phase
                for phase, (phase_side, writers) in enumerate(schedule)
                if phase_side == side and index < writers
            )
            specs.append(
                WriterSpec(
                    index=index,
                    app_name=name,
                    env=env,
                    django_databases=storage.django_databases(file) if ours else None,
                    events=events,
                    batch=batch,
                    phases=phases,
                )
            )
    ctx = multiprocessing.get_context("spawn")
    starts = [ctx.Event() for _ in schedule]
    reports = ctx.Queue()
    processes = [
        ctx.Process(target=writer_process, args=(spec, starts, reports))
        for spec in specs
    ]
    phase_rates: dict[Side, dict[int, list[float]]] = {
        side: {1: [], count: []} for side in storages
    }
    for process in processes:
        process.start()
    try:
        inbox = Inbox(reports)
        for phase, (side, writers) in enumerate(schedule):
            inbox.take("ready", phase, writers)
            starts[phase].set()
            spans = inbox.take("span", phase, writers)
            started = min(span[2] for span in spans)
            ended = max(span[3] for span in spans)
            phase_rates[side][writers].append(
                sum(span[4] for span in spans) / (ended - started)
            )
        for process in processes:
            process.join(timeout=60)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join()
        reports.close()
    return {
        side: (
            Measured(statistics.mean(ones), tuple(ones)),
            Measured(statistics.mean(manys), tuple(manys)),
        )
        for side, (ones, manys) in (
            (side, (by[1], by[count])) for side, by in phase_rates.items()
        )
    }


#: 0.x's rows, made in the server: aggregates of 10 events, 200-byte states, the
#: aggregates' IDs in random order (as UUID4s are) on PostgreSQL, where the order
#: of keys matters to the cost of an index; in key order on SQLite (no md5()).
FILL_0X: dict[str, str] = {
    "postgresql": (
        "INSERT INTO stored_events (application_name, originator_id, "
        "originator_version, topic, state) SELECT %s, "
        "md5((g / 10)::text)::uuid, g %% 10 + 1, %s, %s "
        "FROM generate_series(0, %s - 1) AS g"
    ),
    "sqlite": (
        "WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM g "
        "WHERE x < %s - 1) INSERT INTO stored_events (application_name, "
        "originator_id, originator_version, topic, state) "
        "SELECT %s, printf('%%032x', x / 10), x %% 10 + 1, %s, %s FROM g"
    ),
}


def measure_upgrade(storage: Storage, events: int) -> float:
    """Events per second, copying and verifying an application's ``events``
    from 0.x's shared tables into its own table, in the same database."""
    from django.db import connections

    from eventsourcing_django.upgrade import plan_upgrade
    from tests.legacy import DDL

    name = UPGRADE_APPLICATIONS[storage.vendor]
    storage.env(name)  # SQLite: a database file of its own
    connection = connections[storage.alias]
    with connection.cursor() as cursor:
        for statement in DDL[connection.vendor]:
            cursor.execute(statement)
        if connection.vendor == "postgresql":
            cursor.execute(FILL_0X["postgresql"], [name, TOPIC, STATE, events])
            cursor.execute("ANALYZE stored_events")
        else:
            cursor.execute(FILL_0X["sqlite"], [events, name, TOPIC, STATE])
    (copy,) = plan_upgrade(storage.alias, [name]).copies
    gc.collect()
    started = time.perf_counter()
    copy.run()
    seconds = time.perf_counter() - started
    return events / seconds


def measure_projections(storage: Storage, sizes: Sizes) -> dict[str, float]:
    """Events per second: writing the events, then projecting them."""
    from django.db import connections

    from eventsourcing_django.projections import (
        BatchPolicy,
        LoadedProjection,
        ProjectionSpec,
    )
    from tests.testapp.domain import World
    from tests.testapp.models import WorldSummary

    env = storage.env("projections")
    spec = ProjectionSpec.from_setting(
        "WorldSummary",
        {
            "application": "tests.testapp.domain:Universe",
            "projection": "tests.testapp.projections:WorldSummaryProjection",
            "view": "tests.testapp.projections:WorldSummaryView",
            "env": env,
        },
    )
    with connections[storage.alias].schema_editor() as editor:
        editor.create_model(WorldSummary)
    projection = LoadedProjection(spec)
    try:
        app = projection.app
        # The example's application snapshots worlds; the projection reads
        # only events: write only events.
        app.snapshotting_intervals = {}
        started = time.perf_counter()
        for _ in range(sizes.projection_events // 100):
            worlds = [World() for _ in range(10)]
            for world in worlds:
                for n in range(9):
                    world.make_it_so(f"thing {n}")
            app.save(*worlds)
        results = {"write": sizes.projection_events / (time.perf_counter() - started)}

        def timed(events: int, batch: BatchPolicy, *, reset: bool) -> float:
            gc.collect()
            started = time.perf_counter()
            if reset:
                projection.reset()
            projection.catch_up(batch=batch)
            assert projection.position() == events, projection.position()
            return events / (time.perf_counter() - started)

        # One transaction per event, as before pages: the first events only.
        per_event = sizes.projection_per_event
        # Catch up to there, as if the log ended there.
        projection.end = lambda: per_event  # type: ignore[method-assign]
        results["per_event"] = timed(per_event, BatchPolicy(size=1), reset=False)
        del projection.end
        projection.reset()
        policy = BatchPolicy.from_settings()
        results["catch_up"] = timed(sizes.projection_events, policy, reset=False)
        results["rebuild"] = timed(sizes.projection_events, policy, reset=True)
        results["catch_up_x"] = results["catch_up"] / results["per_event"]
        results["rebuild_x"] = results["rebuild"] / results["per_event"]
        assert WorldSummary.objects.using(storage.alias).count() == (
            sizes.projection_events // 10
        )
    finally:
        projection.close()
    return results


def run_projections(
    run: Run, vendor: Vendor, rounds: int, sizes: Sizes
) -> list[dict[str, float]]:
    results = []
    for round_no in range(rounds):
        started = time.perf_counter()
        with run.storage(vendor, "ours", round_no) as storage:
            results.append(measure_projections(storage, sizes))
        print(
            f"  {VENDOR_TITLES[vendor]} round {round_no + 1}/{rounds} projections"
            f" {time.perf_counter() - started:5.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return results


PROJECTION_ROWS: tuple[tuple[str, str], ...] = (
    ("write", "writing the events (10 worlds of 10 events a save)"),
    ("per_event", "one transaction per event (the first {per_event:,})"),
    ("catch_up", "catch-up in pages"),
    ("rebuild", "rebuild in pages (reset included)"),
    ("catch_up_x", "catch-up / one transaction per event"),
    ("rebuild_x", "rebuild / one transaction per event"),
)


def projections_table(
    vendor: Vendor, results: list[dict[str, float]], sizes: Sizes
) -> str:
    lines = [
        f"{VENDOR_TITLES[vendor]}: projection WorldSummary, "
        f"{sizes.projection_events:,} events, {len(results)} rounds (median, min-max)"
    ]
    for key, label in PROJECTION_ROWS:
        values = [r[key] for r in results]
        median = statistics.median(values)
        unit = "x" if key.endswith("_x") else "events/s"
        target = PROJECTION_TARGETS.get(vendor, {}).get(key)
        verdict = ""
        if target is not None:
            verdict = (
                f"  target {target.describe()}: "
                f"{'met' if target.met(median) else 'MISSED'}"
            )
        label = label.format(per_event=sizes.projection_per_event)
        lines.append(
            f"  {label:52} {fmt(median):>9} {unit:8} "
            f"({fmt(min(values))}-{fmt(max(values))}){verdict}"
        )
    return "\n".join(lines)


# One round of all sides -------------------------------------------------------------


#: One round's figures of one side, by measurement (see ROWS).
RoundResults = dict[str, Measured]


def measure_recorders(storage: Storage, sizes: Sizes, baton: Baton) -> RoundResults:
    """One side's measurements of single recorder calls and round trips (all
    but the writers), taking turns with the other sides through ``baton``."""
    results: RoundResults = {}
    for batch, total in sizes.inserts:
        results[f"insert_{batch}"] = measure_inserts(
            storage, batch, total, sizes.slices, baton
        )
    results["select_events"] = measure_select_events(
        storage, sizes.select_events_calls, sizes.slices, baton
    )
    results["select_notifications"] = measure_select_notifications(
        storage,
        sizes.notifications,
        sizes.notifications_page,
        sizes.notifications_passes,
        baton,
    )
    results["app_round_trip"] = measure_app_round_trip(
        storage, sizes.app_aggregates, sizes.app_commands, sizes.slices, baton
    )
    return results


def side_process(storage: Storage, sizes: Sizes, pipe: Any) -> None:
    """One side's recorder measurements of one round, alone in its process (as
    a user's process would run it: no other side's code, objects or garbage),
    taking turns with the other sides' processes slice by slice. Sends
    ("block", slices) before each block, ("done", results) at the end, or
    ("error", traceback)."""
    try:
        if storage.side in DJANGO_SIDES:
            configure_django(storage.django_databases("Setup"))
        pipe.send(("done", measure_recorders(storage, sizes, Baton(pipe))))
    except BaseException:
        pipe.send(("error", traceback.format_exc()))
    finally:
        if storage.side in DJANGO_SIDES:
            from django.db import connections

            connections.close_all()


def receive(pipe: Any, side: Side) -> tuple[Any, ...]:
    if not pipe.poll(600):
        raise TimeoutError(f"the {side} side's process said nothing for 10 minutes")
    message: tuple[Any, ...] = pipe.recv()
    if message[0] == "error":
        raise RuntimeError(f"the {side} side's process failed:\n{message[1]}")
    return message


def run_sides_apart(
    storages: Mapping[Side, Storage], sizes: Sizes
) -> dict[Side, RoundResults]:
    """``measure_recorders`` with each side in a process of its own, the
    sides taking turns slice by slice (see ``Baton``): every
    process announces each block of slices, and this one lets them run slice
    ``i`` one after the other, in an order that rotates every slice."""
    ctx = multiprocessing.get_context("spawn")
    order = list(storages)
    pipes: dict[Side, Any] = {}
    processes = []
    for side, storage in storages.items():
        ours, theirs = ctx.Pipe()
        process = ctx.Process(target=side_process, args=(storage, sizes, theirs))
        process.start()
        pipes[side] = ours
        processes.append(process)
    results: dict[Side, RoundResults] = {}
    try:
        while len(results) < len(order):
            blocks = set()
            for side in order:
                message = receive(pipes[side], side)
                if message[0] == "done":
                    results[side] = message[1]
                else:
                    blocks.add(message[1])
            if blocks and (len(blocks) > 1 or results):
                raise RuntimeError("the sides' processes fell out of step")
            for i in range(blocks.pop() if blocks else 0):
                for side in rotated(tuple(order), i):
                    pipes[side].send("go")
                    receive(pipes[side], side)
        for process in processes:
            process.join(timeout=60)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join()
    return results


def run_round(
    storages: Mapping[Side, Storage], sizes: Sizes
) -> dict[Side, RoundResults]:
    """Every measurement of one round, the sides side by side (in the order of
    ``storages``, rotated slice by slice within each measurement), each side
    in a process of its own."""
    results = run_sides_apart(storages, sizes)
    writers = measure_writers(
        storages, sizes.writers, sizes.writer_events, sizes.writer_batch
    )
    for side, (one, many) in writers.items():
        results[side]["writers_1"] = one
        results[side]["writers_n"] = many
        results[side]["scaling"] = Measured(
            many.value / one.value,
            tuple(m / o for m, o in zip(many.slices, one.slices, strict=True)),
        )
    return results


class Run:
    """Creates and always removes the storage of the rounds."""

    def __init__(
        self, server: PgServer, mariadb: MariaDBServer, stack: contextlib.ExitStack
    ) -> None:
        self.server = server
        self.mariadb = mariadb
        self.stack = stack
        self.tempdir = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="esdj-bench-"))
        )

    @contextlib.contextmanager
    def storage(self, vendor: Vendor, side: Side, round_no: int) -> Iterator[Storage]:
        name = f"esdj_bench_{os.getpid()}_{round_no}_{side}"
        storage: Storage
        if vendor == "postgres":
            # Registered before it exists, so a failed CREATE is dropped too.
            self.stack.callback(drop_database, self.server, name)
            storage = PostgresStorage(side, self.server, name)
        elif vendor == "mariadb":
            self.stack.callback(
                self.mariadb.execute, f"DROP DATABASE IF EXISTS `{name}`"
            )
            storage = MariaDBStorage(side, self.mariadb, name)
        else:
            storage = SQLiteStorage(side, self.tempdir / name)
        try:
            yield storage
        finally:
            storage.close()


def run_upgrade(run: Run, vendor: Vendor, rounds: int, sizes: Sizes) -> list[float]:
    results = []
    for round_no in range(rounds):
        started = time.perf_counter()
        with run.storage(vendor, "ours", round_no) as storage:
            results.append(measure_upgrade(storage, sizes.upgrade_events))
        print(
            f"  {VENDOR_TITLES[vendor]} round {round_no + 1}/{rounds} upgrade"
            f" {time.perf_counter() - started:5.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return results


def upgrade_table(vendor: Vendor, results: list[float], events: int) -> str:
    target = UPGRADE_TARGETS[vendor]
    verdict = ""
    if target is not None:
        met = target.met(statistics.median(results))
        verdict = f"; target {target.describe()}: {'met' if met else 'MISSED'}"
    return (
        f"{VENDOR_TITLES[vendor]}: upgrade from 0.x, {events:,} events: "
        f"{fmt(statistics.median(results))} events/s median, "
        f"{fmt(min(results))}-{fmt(max(results))} over {len(results)} rounds"
        f"{verdict}"
    )


def run_vendor(
    run: Run, vendor: Vendor, rounds: int, sizes: Sizes
) -> dict[Side, list[RoundResults]]:
    sides = sides_for(vendor)
    results: dict[Side, list[RoundResults]] = {side: [] for side in sides}
    for round_no in range(rounds):
        order = rotated(sides, round_no)
        started = time.perf_counter()
        with contextlib.ExitStack() as stack:
            storages = {
                side: stack.enter_context(run.storage(vendor, side, round_no))
                for side in order
            }
            for side, side_results in run_round(storages, sizes).items():
                results[side].append(side_results)
        print(
            f"  {VENDOR_TITLES[vendor]} round {round_no + 1}/{rounds} "
            f"({', '.join(order)}) {time.perf_counter() - started:5.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return results


# Report -------------------------------------------------------------------------------


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def sides_for(vendor: Vendor) -> tuple[Side, ...]:
    """Ours first, then the library's module (if it serves the vendor), then the
    vendor's extra sides (the psycopg limit, ours with Django's defaults)."""
    sides: tuple[Side, ...] = SIDES if vendor in NATIVE_VENDORS else SIDES[:1]
    return sides + EXTRA_SIDES.get(vendor, ())


def rotated(sides: tuple[Side, ...], round_no: int) -> tuple[Side, ...]:
    """The order of the sides in round ``round_no``: each goes first in turn."""
    shift = round_no % len(sides)
    return sides[shift:] + sides[:shift]


#: The ratios shown per vendor (numerator side, denominator side).
PAIRS: dict[Vendor, tuple[tuple[Side, Side], ...]] = {
    "postgres": (("ours", "native"), ("ours", "limit")),
    "sqlite": (("ours", "native"), ("defaults", "native")),
    "mariadb": (),
}

#: Issue 16's targets, on the median of the paired ratios of a pair of sides.
PAIR_TARGETS: dict[tuple[Side, Side], dict[str, Target]] = {
    ("ours", "limit"): {
        "insert_1": Target(0.95),
        "insert_10": Target(0.95),
        "insert_100": Target(0.95),
        "writers_n": Target(0.95),
    },
    ("defaults", "native"): {
        "insert_1": Target(0.9),
        "insert_10": Target(0.9),
        "insert_100": Target(0.9),
        "select_events": Target(1.1, upper=True),
        "app_round_trip": Target(1.0),
    },
}


def paired_ratio(
    results: dict[Side, list[RoundResults]], key: str, pair: tuple[Side, Side]
) -> float | None:
    """The median of the paired ratios of the two sides' slices, over all
    rounds: slice ``i`` of both ran within milliseconds of each other (see
    ``Baton``), so what the machine did meanwhile weighs on both."""
    top, bottom = (results.get(side, []) for side in pair)
    ratios = [
        t / b
        for top_round, bottom_round in zip(top, bottom, strict=False)
        for t, b in zip(top_round[key].slices, bottom_round[key].slices, strict=True)
        if b
    ]
    return statistics.median(ratios) if ratios else None


def targets_for(vendor: Vendor, pair: tuple[Side, Side]) -> dict[str, Target]:
    if pair == ("ours", "native"):
        return {k: t for k, t in TARGETS[vendor].items() if t.on_ratio}
    return PAIR_TARGETS.get(pair, {})


def table(vendor: Vendor, results: dict[Side, list[RoundResults]]) -> str:
    sides = [side for side in sides_for(vendor) if results.get(side)]
    pairs = [p for p in PAIRS[vendor] if all(results.get(side) for side in p)]
    header = (
        "measurement",
        "unit",
        *(f"{SIDE_TITLES[side]} median (min-max)" for side in sides),
        *(f"{p[0]}/{p[1]}" for p in pairs),
        "targets",
    )
    lines: list[tuple[str, ...]] = [header]
    met_or_missed: list[str] = []
    for key, label, unit in ROWS:
        cells: list[str] = []
        for side in sides:
            values = [r[key].value for r in results[side]]
            cells.append(
                f"{fmt(statistics.median(values))} "
                f"({fmt(min(values))}-{fmt(max(values))})"
            )
        verdicts: list[str] = []
        target = TARGETS[vendor].get(key)
        if target is not None and not target.on_ratio:
            median_ours = statistics.median(r[key].value for r in results["ours"])
            verdicts.append(verdict("ours", target, median_ours))
        for pair in pairs:
            ratio = paired_ratio(results, key, pair)
            cells.append("-" if ratio is None else f"{ratio:.2f}")
            pair_target = targets_for(vendor, pair).get(key)
            if pair_target is not None and ratio is not None:
                verdicts.append(verdict(f"{pair[0]}/{pair[1]}", pair_target, ratio))
        met_or_missed += verdicts
        lines.append((label, unit, *cells, "; ".join(verdicts)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    numeric = set(range(2, len(header) - 1))

    def render(line: tuple[str, ...]) -> str:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        return "  ".join(cells).rstrip()

    rule = "-" * len(render(header))
    rounds = len(results["ours"])
    met = sum("MISSED" not in v for v in met_or_missed)
    out = [
        f"{VENDOR_TITLES[vendor]} ({rounds} rounds; ratios: medians of the paired "
        f"ratios of interleaved slices; targets met: {met} of {len(met_or_missed)})",
        rule,
        render(header),
        rule,
    ]
    out += [render(line) for line in lines[1:]]
    out.append(rule)
    return "\n".join(out)


def verdict(what: str, target: Target, value: float) -> str:
    sign = "<=" if target.upper else ">="
    return f"{what} {sign} {target.bound:g}: {'met' if target.met(value) else 'MISSED'}"


def load_average() -> str:
    """The 1, 5 and 15-minute load averages (the machine's other work)."""
    return ", ".join(f"{load:.2f}" for load in os.getloadavg())


def describe_setup(args: argparse.Namespace, sizes: Sizes) -> str:
    import django

    import eventsourcing_django

    inserts = ", ".join(
        f"{total} in batches of {batch}" for batch, total in sizes.inserts
    )
    return "\n".join(
        [
            f"Python {platform.python_version()}, Django {django.get_version()}, "
            f"eventsourcing {importlib.metadata.version('eventsourcing')}, psycopg "
            f"{psycopg.__version__} ({psycopg.pq.__impl__}), {os.cpu_count()} CPUs, "
            f"load average at the start {load_average()}",
            f"eventsourcing_django from {Path(eventsourcing_django.__file__).parent}",
            f"rounds {args.rounds}; per round and side: inserts {inserts}; "
            f"select_events x{sizes.select_events_calls}; select_notifications "
            f"{sizes.notifications} in pages of {sizes.notifications_page} "
            f"x{sizes.notifications_passes}; app {sizes.app_commands} commands over "
            f"{sizes.app_aggregates} aggregates; writers {sizes.writer_events} events "
            f"each in batches of {sizes.writer_batch}, phases of 1, {sizes.writers}, "
            f"{sizes.writers}, 1 processes per side; {sizes.slices} slices; "
            f"upgrade from 0.x {sizes.upgrade_events} events",
        ]
    )


# Main ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--database", choices=[*VENDORS, "all"], default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply the events of every measurement",
    )
    parser.add_argument(
        "--slices",
        type=int,
        default=20,
        help="into how many slices each side's inserts and round trips are cut, "
        "the sides taking turns slice by slice",
    )
    parser.add_argument(
        "--measure",
        choices=["all", "recorders", "upgrade", "projections", "http", "dcb"],
        default="all",
        help=(
            "the recorders against native ones, the upgrade from 0.x, "
            "projections, requests through a threaded server (PostgreSQL), "
            "DCB against eventsourcing.dcb.postgres_tt (PostgreSQL), or all"
        ),
    )
    parser.add_argument(
        "--dcb-events",
        type=int,
        default=0,
        help="with --measure dcb: also fill ours with this many DCB events "
        "(e.g. 1000000), time reads by tag and show their plans",
    )
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--mariadb-host", default="127.0.0.1")
    parser.add_argument("--mariadb-port", type=int, default=3306)
    parser.add_argument("--mariadb-user", default="root")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.slices < 1:
        parser.error("--slices must be at least 1")
    return args


def run_dcb_measurements(run: Run, args: argparse.Namespace) -> None:
    """DCB against eventsourcing.dcb.postgres_tt (benchmarks/bench_dcb.py)."""
    from bench_dcb import dcb_table, run_dcb, run_dcb_million

    results = run_dcb(run, args.rounds, args.scale)
    print("\n" + dcb_table(results, args.scale), flush=True)
    if args.dcb_events:
        print("\n" + run_dcb_million(run, args.dcb_events), flush=True)


def raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # Measure the package next to this directory, not some other installed copy.
    sys.path.insert(0, str(REPO_ROOT))
    signal.signal(signal.SIGTERM, raise_on_sigterm)
    server = PgServer(
        args.pg_host, args.pg_port, args.pg_user, os.environ.get("PGPASSWORD", "")
    )
    mariadb = MariaDBServer(
        args.mariadb_host,
        args.mariadb_port,
        args.mariadb_user,
        os.environ.get("MYSQL_PWD", ""),
    )
    vendors: tuple[Vendor, ...] = (
        VENDORS if args.database == "all" else (args.database,)
    )
    sizes = Sizes.scaled(args.scale, args.slices)
    configure_django(
        {
            PostgresStorage.alias: server.django_settings("postgres"),
            SQLiteStorage.alias: sqlite_django_settings(":memory:"),
            SQLiteStorage.defaults_alias: sqlite_default_settings(":memory:"),
            MariaDBStorage.alias: mariadb.django_settings("mysql"),
        }
    )
    print(describe_setup(args, sizes), flush=True)
    tables: list[str] = []
    with contextlib.ExitStack() as stack:
        run = Run(server, mariadb, stack)
        for vendor in vendors:
            if args.measure in ("all", "recorders"):
                results = run_vendor(run, vendor, args.rounds, sizes)
                tables.append(table(vendor, results))
                print("\n" + tables[-1], flush=True)
            # The upgrade from 0.x runs on PostgreSQL and SQLite only.
            if args.measure in ("all", "upgrade") and vendor in NATIVE_VENDORS:
                upgrades = run_upgrade(run, vendor, args.rounds, sizes)
                tables.append(upgrade_table(vendor, upgrades, sizes.upgrade_events))
                print("\n" + tables[-1], flush=True)
            if args.measure in ("all", "projections"):
                projections = run_projections(run, vendor, args.rounds, sizes)
                tables.append(projections_table(vendor, projections, sizes))
                print("\n" + tables[-1], flush=True)
        if args.measure in ("all", "dcb") and "postgres" in vendors:
            run_dcb_measurements(run, args)
    if args.measure in ("all", "http") and "postgres" in vendors:
        from bench_http import run_http

        pg = {
            "host": server.host,
            "port": str(server.port),
            "user": server.user,
            "password": server.password,
        }
        requests = max(100, int(2000 * args.scale))
        print("\n" + run_http(args.rounds, requests, pg, port=8765), flush=True)
    print(f"\nload average at the end {load_average()}", flush=True)


if __name__ == "__main__":
    main()
