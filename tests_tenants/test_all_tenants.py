"""One worker process follows a projection in 200 tenant schemas, fairly."""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection

from eventsourcing_django.tenants import get_tenant_application
from tests.testapp.domain import Universe

ROOT = Path(__file__).resolve().parent.parent
TENANTS = int(os.environ.get("ESDJ_ALL_TENANTS", "200"))
THREADS = 4
#: The worker's connections: its main thread, its listening thread, THREADS.
MAX_CONNECTIONS = THREADS + 2
#: Printed at the end of the run (see conftest.py).
FIGURES: list[str] = []


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            msg = f"timed out after {timeout} s waiting for {what}"
            raise TimeoutError(msg)
        time.sleep(0.02)
    return time.monotonic() - started


def view_of(schema: str) -> tuple[int, int]:
    """(worlds, things) in the tenant's read model."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(sum(history_length), 0) "
            f'FROM "{schema}".shop_worldsummary'
        )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def create_tenants(names: list[str]) -> None:
    """Clone the tenants from a template schema (no migrations run)."""
    from django.conf import settings

    from tests_tenants.customers.models import Client

    settings.TENANT_BASE_SCHEMA = "tenant_c"
    settings.TENANT_CREATION_FAKES_MIGRATIONS = True
    try:
        for name in names:
            Client(schema_name=name, name=name).save(verbosity=0)
    finally:
        settings.TENANT_BASE_SCHEMA = None
        connection.set_schema_to_public()


@pytest.fixture
def many_tenants() -> Iterator[list[str]]:
    from tests_tenants.customers.models import Client

    names = [f"many_{n:03d}" for n in range(TENANTS)]
    started = time.monotonic()
    create_tenants(names)
    FIGURES.append(
        f"{TENANTS} tenant schemas cloned in {time.monotonic() - started:.1f} s"
    )
    try:
        yield names
    finally:
        connection.set_schema_to_public()
        for client in Client.objects.filter(schema_name__startswith="many_"):
            client.delete()
        connection.set_schema_to_public()


def worker_connections(application_name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            [application_name],
        )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def start_worker(
    application_name: str, threads: int = THREADS, batch_size: int = 500
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "ESDJ_USE_TEST_DATABASES": "1",
        "ESDJ_PG_APPLICATION_NAME": application_name,
        "ESDJ_PROJECTION_BATCH_SIZE": str(batch_size),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django",
            "run_projections",
            "WorldSummary",
            "--all-tenants",
            f"--threads={threads}",
            "--heartbeat=0.5",
            "--settings=settings_tenants",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_one_worker_follows_every_tenant(many_tenants: list[str]) -> None:
    # Each tenant's log: one world with two things, so its view should say (1, 2).
    for schema in many_tenants:
        universe = get_tenant_application(Universe, schema)
        world_id = universe.create_world()
        universe.make_it_so(world_id, "one")
        universe.make_it_so(world_id, "two")
    # One tenant's view cannot be written: its tracking table is gone.
    broken = many_tenants[len(many_tenants) // 2]
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{broken}".worldsummary_tracking')
    healthy = [s for s in many_tenants if s != broken]

    application_name = f"esdj-all-tenants-{os.getpid()}"
    worker = start_worker(application_name)
    most_connections = 0

    def all_followed() -> bool:
        nonlocal most_connections
        most_connections = max(most_connections, worker_connections(application_name))
        assert worker.poll() is None, worker.communicate()
        return all(view_of(s) == (1, 2) for s in healthy)

    try:
        caught_up = wait_until(all_followed, 120, "every tenant's view")
        FIGURES.append(
            f"one worker caught {len(healthy)} tenants up in {caught_up:.1f} s"
        )

        # A tenant created while it runs is followed without a restart.
        create_tenants(["many_new"])
        universe = get_tenant_application(Universe, "many_new")
        universe.make_it_so(universe.create_world(), "hello")
        wait_until(lambda: view_of("many_new") == (1, 1), 15, "the new tenant")

        # A tenant dropped while it runs is let go (the log says so, below).
        from tests_tenants.customers.models import Client

        Client.objects.get(schema_name="many_new").delete()
        connection.set_schema_to_public()

        # From a write in any tenant to its view.
        latencies = []
        for schema in random.Random(15).sample(healthy, min(30, len(healthy))):
            universe = get_tenant_application(Universe, schema)
            world_id = universe.create_world()
            written = time.monotonic()
            wait_until(lambda s=schema: view_of(s)[0] == 2, 15, f"{schema}'s view")
            latencies.append(time.monotonic() - written)
            most_connections = max(
                most_connections, worker_connections(application_name)
            )
        p50 = statistics.median(latencies)
        p95 = statistics.quantiles(latencies, n=20)[-1]
        FIGURES.append(
            f"write to view, {len(latencies)} writes over {TENANTS} tenants: "
            f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
        )
        FIGURES.append(
            f"the worker's connections: at most {most_connections} "
            f"(bound {MAX_CONNECTIONS})"
        )
        # Tenants are looked up every second: time to see many_new gone.
        time.sleep(2)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "Stopped." in out
    assert 0 < most_connections <= MAX_CONNECTIONS
    # The broken tenant was reported, and did not stop the others.
    assert f"tenant {broken} failed" in err
    assert "tenant many_new is gone" in err
    assert view_of(broken) == (0, 0)
    # (The latency writes each added a world without things.)
    assert all(view_of(s)[1] == 2 for s in healthy)


def tracked_position(schema: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT max(notification_id) FROM "{schema}".worldsummary_tracking'
        )
        row = cursor.fetchone()
    return int(row[0] or 0) if row else 0


def test_a_tenant_with_a_large_backlog_does_not_starve_the_others() -> None:
    from tests.testapp.domain import World
    from tests_tenants.customers.models import Client

    names = ["fair_big", *(f"fair_{n}" for n in range(5))]
    create_tenants(names)
    try:
        big = get_tenant_application(Universe, "fair_big")
        for _ in range(30):  # 3,000 events: 60 pages of 50
            world = World()
            for n in range(99):
                world.make_it_so(f"thing {n}")
            big.save(world)
        for schema in names[1:]:
            get_tenant_application(Universe, schema).create_world()

        # One thread, pages of 50: tenants take turns, one page each.
        worker = start_worker(f"esdj-fair-{os.getpid()}", threads=1, batch_size=50)
        try:
            wait_until(
                lambda: all(view_of(s) == (1, 0) for s in names[1:]),
                60,
                "the small tenants",
            )
            # The small tenants were served while the big one was still behind.
            assert tracked_position("fair_big") < 3000
            wait_until(lambda: view_of("fair_big") == (30, 2970), 120, "fair_big")
        finally:
            worker.send_signal(signal.SIGTERM)
            _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
    finally:
        connection.set_schema_to_public()
        for client in Client.objects.filter(schema_name__startswith="fair_"):
            client.delete()
        connection.set_schema_to_public()
