"""DCB (``eventsourcing.dcb``) on PostgreSQL: our recorder beside the library's
``eventsourcing.dcb.postgres_tt``, in the same run, on the same server.

Each round, each side gets a fresh database (which side goes first swaps every
round) and a recorder built as users build it (``PERSISTENCE_MODULE``
``eventsourcing_django`` with ``DJANGO_DB_ALIAS``, or
``eventsourcing.dcb.postgres_tt`` with one pooled connection), then:

* seeds ``seed`` events (100 courses, one student each, tagged with both), in
  appends of 100 without a condition;
* ``append_condition``: appends of one ``StudentJoinedCourse`` event tagged with a
  new course and a new student, on the condition that nothing was appended with
  either tag (two query items, by tag), appends/s;
* ``read_tag``: reads by one tag (a course's 1% of the events), median µs;
* ``read_two_tags``: reads by two tags (a course and a student: one event),
  median µs.

``--dcb-events N`` (N events, e.g. 1,000,000) then fills ours alone with N
events, times reads by one and by two tags, and prints PostgreSQL's plan of each,
which must use the tags index, not a scan.

    python benchmarks/bench.py --measure dcb --rounds 5
    python benchmarks/bench.py --measure dcb --rounds 1 --dcb-events 1000000
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eventsourcing.dcb.api import (
    DCBAppendCondition,
    DCBEvent,
    DCBQuery,
    DCBQueryItem,
    DCBRecorder,
)
from eventsourcing.dcb.persistence import DCBInfrastructureFactory
from eventsourcing.utils import Environment

if TYPE_CHECKING:
    from bench import PgServer, Run

NAME = "BenchDCB"
DATA = bytes(i % 256 for i in range(7, 207))  # 200 bytes
COURSES = 100

#: Ours over the library's: at least these (latencies: the inverse ratio).
TARGETS = {"append_condition": 1.0, "read_tag": 1.0, "read_two_tags": 1.0}
ROWS = (
    ("append_condition", "append with condition", "appends/s"),
    ("read_tag", "read by one tag (1% of events)", "µs"),
    ("read_two_tags", "read by two tags (1 event)", "µs"),
)
LATENCIES = {"read_tag", "read_two_tags"}


def seed_events(count: int, start: int = 0) -> list[DCBEvent]:
    return [
        DCBEvent(
            type="StudentJoinedCourse",
            data=DATA,
            tags=[f"course-{i % COURSES}", f"student-{i}"],
        )
        for i in range(start, start + count)
    ]


def fill(recorder: DCBRecorder, count: int, batch: int) -> None:
    for start in range(0, count, batch):
        recorder.append(seed_events(min(batch, count - start), start))


def median_us(call: Callable[[], Any], calls: int) -> float:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def measure(
    recorder: DCBRecorder, seed: int, appends: int, reads: int
) -> dict[str, float]:
    fill(recorder, seed, 100)
    results: dict[str, float] = {}
    started = time.perf_counter()
    for j in range(appends):
        course, student = f"new-course-{j}", f"new-student-{j}"
        recorder.append(
            [DCBEvent(type="StudentJoinedCourse", data=DATA, tags=[course, student])],
            DCBAppendCondition(
                DCBQuery(
                    [
                        DCBQueryItem(tags=[course]),
                        DCBQueryItem(types=["StudentJoinedCourse"], tags=[student]),
                    ]
                )
            ),
        )
    results["append_condition"] = appends / (time.perf_counter() - started)
    counter = iter(range(10**9))

    def read_tag() -> None:
        i = next(counter)
        events = list(
            recorder.read(DCBQuery([DCBQueryItem(tags=[f"course-{i % COURSES}"])]))
        )
        assert len(events) == seed // COURSES, len(events)

    def read_two_tags() -> None:
        i = next(counter) % seed
        query = DCBQuery([DCBQueryItem(tags=[f"course-{i % COURSES}", f"student-{i}"])])
        assert len(list(recorder.read(query))) == 1

    results["read_tag"] = median_us(read_tag, reads)
    results["read_two_tags"] = median_us(read_two_tags, reads)
    return results


def ours_recorder(run: Run, dbname: str) -> DCBRecorder:
    from bench import point_alias

    point_alias("postgres", dbname)
    env = {"PERSISTENCE_MODULE": "eventsourcing_django", "DJANGO_DB_ALIAS": "postgres"}
    return DCBInfrastructureFactory.construct(Environment(NAME, env)).dcb_recorder()


def native_factory(server: PgServer, dbname: str) -> DCBInfrastructureFactory[Any]:
    env = server.native_env(dbname)
    env["PERSISTENCE_MODULE"] = "eventsourcing.dcb.postgres_tt"
    return DCBInfrastructureFactory.construct(Environment(NAME, env))


def run_dcb(run: Run, rounds: int, scale: float) -> dict[str, list[dict[str, float]]]:
    from bench import close_alias

    seed = max(COURSES, int(10_000 * scale) // COURSES * COURSES)
    appends = max(50, int(2_000 * scale))
    reads = max(50, int(1_000 * scale))
    results: dict[str, list[dict[str, float]]] = {"ours": [], "native": []}
    for round_no in range(rounds):
        order = ("ours", "native") if round_no % 2 == 0 else ("native", "ours")
        for side in order:
            started = time.perf_counter()
            with run.storage("postgres", side, round_no) as storage:
                dbname = storage.dbname  # type: ignore[attr-defined]
                if side == "ours":
                    try:
                        recorder = ours_recorder(run, dbname)
                        results[side].append(measure(recorder, seed, appends, reads))
                    finally:
                        close_alias("postgres")
                else:
                    factory = native_factory(run.server, dbname)
                    try:
                        recorder = factory.dcb_recorder()
                        results[side].append(measure(recorder, seed, appends, reads))
                    finally:
                        factory.close()
            print(
                f"  DCB round {round_no + 1}/{rounds} {side:6}"
                f" {time.perf_counter() - started:5.1f} s",
                file=sys.stderr,
                flush=True,
            )
    return results


def dcb_table(results: dict[str, list[dict[str, float]]], scale: float) -> str:
    from bench import fmt

    seed = max(COURSES, int(10_000 * scale) // COURSES * COURSES)
    lines = [
        f"PostgreSQL DCB, {seed:,} events seeded ({len(results['ours'])} rounds): "
        "ours (eventsourcing_django) and native (eventsourcing.dcb.postgres_tt)",
        f"{'measurement':32} {'unit':10} {'ours':>10} {'native':>10} "
        f"{'ours/native':>12}  target",
    ]
    for key, label, unit in ROWS:
        ours = statistics.median(r[key] for r in results["ours"])
        native = statistics.median(r[key] for r in results["native"])
        # Faster is better: for latencies, native over ours.
        ratio = native / ours if key in LATENCIES else ours / native
        target = TARGETS[key]
        verdict = "met" if ratio >= target else "MISSED"
        lines.append(
            f"{label:32} {unit:10} {fmt(ours):>10} {fmt(native):>10} "
            f"{ratio:>11.2f}x  speed ratio >= {target:g}: {verdict}"
        )
    return "\n".join(lines)


def run_dcb_million(run: Run, events: int) -> str:
    """Fill ours with ``events`` events; time reads by tag; show the plans."""
    from bench import close_alias
    from django.db import connections

    lines = [f"PostgreSQL DCB, ours alone, {events:,} events"]
    with run.storage("postgres", "ours", 999) as storage:
        dbname = storage.dbname  # type: ignore[attr-defined]
        try:
            recorder = ours_recorder(run, dbname)
            started = time.perf_counter()
            fill(recorder, events, 1000)
            elapsed = time.perf_counter() - started
            lines.append(f"fill: {events / elapsed:,.0f} events/s ({elapsed:.0f} s)")
            with connections["postgres"].cursor() as cursor:
                cursor.execute("ANALYZE")
            per_course = events // COURSES
            one = DCBQuery([DCBQueryItem(tags=["course-7"])])
            two = DCBQuery([DCBQueryItem(tags=["course-7", f"student-{events - 93}"])])
            student = DCBQuery([DCBQueryItem(tags=[f"student-{events // 2 + 7}"])])
            for label, query, expected in (
                ("one tag, a student (1 event)", student, 1),
                ("two tags (1 event)", two, 1),
                (f"one tag, a course ({per_course:,} events)", one, per_course),
                ("one tag, a course, limit 100", one, 100),
            ):
                limit = 100 if "limit" in label else None
                assert len(list(recorder.read(query, limit=limit))) == expected
                us = median_us(
                    lambda q=query, n=limit: list(recorder.read(q, limit=n)), 21
                )
                statement, params = recorder.sql.select(query.items, 0, limit)  # type: ignore[attr-defined]
                with connections["postgres"].cursor() as cursor:
                    cursor.execute("EXPLAIN " + statement, params)
                    plan = [row[0] for row in cursor.fetchall()]
                scans = [p.strip() for p in plan if "Scan" in p]
                seq = any("Seq Scan" in p for p in plan)
                lines.append(
                    f"read by {label}: {us / 1000:.2f} ms median; "
                    f"{'SEQUENTIAL SCAN' if seq else 'index'}: "
                    + " | ".join(s.split("  (")[0] for s in scans)
                )
        finally:
            close_alias("postgres")
    return "\n".join(lines)
