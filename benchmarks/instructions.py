"""Instructions per recorder call, counted by valgrind's callgrind (issue 16).

Timings on a small, shared machine move by more than the microseconds that
separate two recorders; the instructions a process executes do not. For one
side and one path this runs the path N and M times, each in a process of its
own under ``valgrind --tool=callgrind``, and prints (total(N) - total(M)) /
(N - M): the instructions of one call, without the process's start-up::

    python benchmarks/instructions.py --side ours --path insert_1
    python benchmarks/instructions.py --side limit --path insert_1
    python benchmarks/instructions.py --side sqlite-defaults --path round_trip
    python benchmarks/instructions.py --side sqlite-native --path round_trip

Sides: ``ours`` (PostgreSQL through Django, psycopg 3), ``limit`` (our
statements sent by psycopg alone, ``bench_limit.py``), ``native``
(``eventsourcing.postgres``), ``sqlite-defaults`` (ours on SQLite with Django's
default settings) and ``sqlite-native`` (``eventsourcing.sqlite``). Paths:
``insert_1``, ``insert_10``, ``insert_100`` (one new aggregate per call) and
``round_trip`` (an ``Application``'s get, one event, save). ``--calls N M``
sets the two counts (default 200 and 1200). ``--once`` runs one process
without valgrind and prints its wall and CPU time per call.

PostgreSQL is reached as in ``bench.py`` (127.0.0.1:5432, user postgres); each
process makes a database of its own and drops it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (
    BenchApp,
    Counter,
    PgServer,
    application_recorder,
    configure_django,
    sqlite_default_settings,
    stored_events,
)

SIDES = ("ours", "limit", "native", "sqlite-defaults", "sqlite-native")
PATHS = ("insert_1", "insert_10", "insert_100", "round_trip")
ALIAS = "measured"


def environment(side: str, server: PgServer, dbname: str, path: str) -> dict[str, str]:
    ours = {"PERSISTENCE_MODULE": "eventsourcing_django", "DJANGO_DB_ALIAS": ALIAS}
    if side in ("ours", "sqlite-defaults"):
        return ours
    if side == "limit":
        return server.limit_env(dbname)
    if side == "native":
        return server.native_env(dbname)
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path}


def run_calls(
    side: str, path: str, calls: int, server: PgServer
) -> tuple[float, float]:
    """Run ``path`` ``calls`` times; return wall and CPU µs per call."""
    sqlite = side.startswith("sqlite")
    directory = tempfile.TemporaryDirectory(prefix="esdj-instructions-")
    file = str(Path(directory.name) / "db.sqlite3")
    dbname = f"esdj_instructions_{os.getpid()}"
    if not sqlite:
        with server.connect() as admin:
            admin.execute(f'CREATE DATABASE "{dbname}"')
    try:
        configure_django(
            {
                ALIAS: sqlite_default_settings(file)
                if sqlite
                else server.django_settings(dbname)
            }
        )
        env = environment(side, server, dbname, file)
        if path == "round_trip":
            return round_trips(env, calls)
        return inserts(env, int(path.split("_")[1]), calls)
    finally:
        from django.db import connections

        connections.close_all()
        if not sqlite:
            with server.connect() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        directory.cleanup()


def timed(run: Any, calls: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return (
        (time.perf_counter() - wall) / calls * 1e6,
        (time.process_time() - cpu) / calls * 1e6,
    )


def inserts(env: dict[str, str], size: int, calls: int) -> tuple[float, float]:
    with application_recorder("Measured", env) as recorder:
        recorder.insert_events(stored_events(uuid4(), size))  # warm up
        batches = [stored_events(uuid4(), size) for _ in range(calls)]

        def run() -> None:
            for batch in batches:
                recorder.insert_events(batch)

        return timed(run, calls)


def round_trips(env: dict[str, str], calls: int) -> tuple[float, float]:
    app = BenchApp(env=env)
    try:
        ids = []
        for _ in range(100):
            counter = Counter()
            app.save(counter)
            ids.append(counter.id)

        def run() -> None:
            for i in range(calls):
                counter: Counter = app.repository.get(ids[i % len(ids)])
                counter.increment()
                app.save(counter)

        return timed(run, calls)
    finally:
        app.close()


def count(side: str, path: str, calls: int) -> int:
    """The instructions callgrind counts in a process making ``calls`` calls."""
    with tempfile.TemporaryDirectory(prefix="esdj-callgrind-") as directory:
        out = Path(directory) / "callgrind.out"
        completed = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--side",
                side,
                "--path",
                path,
                "--once",
                str(calls),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", completed.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no total:\n{completed.stderr}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", choices=SIDES, required=True)
    parser.add_argument("--path", choices=PATHS, required=True)
    parser.add_argument("--calls", type=int, nargs=2, default=(200, 1200))
    parser.add_argument("--once", type=int, metavar="CALLS")
    args = parser.parse_args()
    server = PgServer("127.0.0.1", 5432, "postgres", os.environ.get("PGPASSWORD", ""))
    if args.once:
        wall, cpu = run_calls(args.side, args.path, args.once, server)
        print(f"{args.side} {args.path}: {wall:.0f} µs wall, {cpu:.0f} µs CPU a call")
        return
    few, many = sorted(args.calls)
    if few == many:
        parser.error("--calls needs two different counts")
    per_call = (
        count(args.side, args.path, many) - count(args.side, args.path, few)
    ) / (many - few)
    print(f"{args.side} {args.path}: {per_call:,.0f} instructions a call")


if __name__ == "__main__":
    main()
