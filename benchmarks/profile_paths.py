"""Profile the recorders' hot paths: where the Python time of one call goes.

For each path (insert of 1 and of 10 events, ``select_events`` of 100 events, an
``Application`` get + event + save) it prints the microseconds per call (median
of a few runs) and, with ``--profile``, pyinstrument's call tree of the path
(``pip install pyinstrument``). docs/profile.md holds what it found.

    python benchmarks/profile_paths.py --database postgres --profile
    python benchmarks/profile_paths.py --database sqlite --sqlite-defaults

PostgreSQL: a database ``esdj_profile_<pid>`` is created and dropped at
127.0.0.1:5432 as postgres (``--pg-host`` etc. as in bench.py). SQLite: a file
in a temporary directory, with Django's default settings (no ``OPTIONS``) when
``--sqlite-defaults`` is given, else with the README's former recommendation
(WAL, ``IMMEDIATE``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (
    BenchApp,
    Counter,
    PgServer,
    configure_django,
    sqlite_django_settings,
    stored_events,
)


def per_call(fn: Callable[[], Any], calls: int, runs: int = 5) -> tuple[float, float]:
    """Medians over ``runs`` of the mean microseconds of ``calls`` calls: wall
    time, and this process's CPU time (the Python and the driver's work,
    without the wait for the server)."""
    fn()
    wall, cpu = [], []
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn()
        wall.append((time.perf_counter() - started) / calls * 1e6)
        cpu.append((time.process_time() - cpu_started) / calls * 1e6)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", choices=["postgres", "sqlite"], required=True)
    parser.add_argument("--sqlite-defaults", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    args = parser.parse_args()

    server = PgServer(args.pg_host, args.pg_port, args.pg_user, "")
    tmp = tempfile.TemporaryDirectory(prefix="esdj-profile-")
    dbname = f"esdj_profile_{__import__('os').getpid()}"
    if args.database == "postgres":
        with server.connect() as admin:
            admin.execute(f'CREATE DATABASE "{dbname}"')
        databases = {"alias": server.django_settings(dbname)}
    else:
        path = str(Path(tmp.name) / "db.sqlite3")
        settings = sqlite_django_settings(path)
        if args.sqlite_defaults:
            settings = {"ENGINE": settings["ENGINE"], "NAME": path}
        databases = {"alias": settings}
    try:
        configure_django(databases)
        run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if args.database == "postgres":
            with server.connect() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        tmp.cleanup()


def run(args: argparse.Namespace) -> None:
    from eventsourcing.persistence import InfrastructureFactory
    from eventsourcing.utils import Environment

    env = {"PERSISTENCE_MODULE": "eventsourcing_django", "DJANGO_DB_ALIAS": "alias"}
    factory = InfrastructureFactory.construct(Environment("Profiled", env))
    recorder = factory.application_recorder()
    aggregate = uuid4()
    recorder.insert_events(stored_events(aggregate, 100))
    app = BenchApp(env=env)
    ids = []
    for _ in range(20):
        counter = Counter()
        app.save(counter)
        ids.append(counter.id)
    position = [0]

    def round_trip() -> None:
        position[0] += 1
        counter = app.repository.get(ids[position[0] % len(ids)])
        counter.increment()
        app.save(counter)

    paths: dict[str, Callable[[], Any]] = {
        "insert_1": lambda: recorder.insert_events(stored_events(uuid4(), 1)),
        "insert_10": lambda: recorder.insert_events(stored_events(uuid4(), 10)),
        "select_events": lambda: recorder.select_events(aggregate),
        "round_trip": round_trip,
    }
    print(f"psycopg {psycopg.__version__}; {args.database}", flush=True)
    for name, fn in paths.items():
        wall, cpu = per_call(fn, args.calls)
        print(f"{name:14} {wall:8.1f} µs/call, CPU {cpu:8.1f} µs/call", flush=True)
    if args.profile:
        from pyinstrument import Profiler

        for name, fn in paths.items():
            profiler = Profiler(interval=0.0001)
            profiler.start()
            for _ in range(args.calls * 3):
                fn()
            profiler.stop()
            print(f"\n===== {name}", flush=True)
            print(
                profiler.output_text(unicode=True, color=False, show_all=False),
                flush=True,
            )
    app.close()
    factory.close()


if __name__ == "__main__":
    main()
