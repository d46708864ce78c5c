"""Requests per second through a threaded Django server, on PostgreSQL.

A Django project with one event-sourced application (the README's ``Universe``)
and three views (create a world, a command on it, a query of its history) is
served by Django's threaded WSGI server, the one ``runserver`` uses (a thread per
client connection), in a process of its own. Four client threads in this
process, each on one keep-alive HTTP connection, send a create, then commands
and queries, for a fixed number of requests. The server runs once with
``CONN_MAX_AGE=0`` (Django closes the request's database connection when the
request ends) and once with ``CONN_MAX_AGE=60`` (it keeps it), alternating which
goes first, round by round, each round on a fresh database.

Besides requests per second, the server counts the database connections it
opened (Django's ``connection_created`` signal) per request.

    python benchmarks/bench_http.py --rounds 5
    python benchmarks/bench.py --http ...    (the same, after the other tables)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 4
CONN_MAX_AGES = (0, 60)


# The server (a process of its own) ------------------------------------------------


def serve(port: int, dbname: str, conn_max_age: int, pg: dict[str, str]) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        SECRET_KEY="eventsourcing-django-benchmark",
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": dbname,
                "HOST": pg["host"],
                "PORT": pg["port"],
                "USER": pg["user"],
                "PASSWORD": pg["password"],
                "CONN_MAX_AGE": conn_max_age,
            }
        },
        INSTALLED_APPS=["eventsourcing_django"],
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.core.servers.basehttp import WSGIRequestHandler, run
    from django.core.wsgi import get_wsgi_application
    from django.db.backends.signals import connection_created

    connection_created.connect(_count_connection)
    # Build the application (and its tables) before the clients start.
    _universe()
    _stats["connections"] = 0
    print("ready", flush=True)
    # Without TCP_NODELAY, headers and body written apart wait for the peer's
    # delayed ACK (40 ms a response); production servers such as gunicorn set it.
    WSGIRequestHandler.disable_nagle_algorithm = True
    # runserver's server: a thread per client connection. Its request log goes
    # to stderr, which the benchmark discards.
    run("127.0.0.1", port, get_wsgi_application(), threading=True)


_stats = {"connections": 0}
_app_lock = threading.Lock()
_app: Any = None


def _count_connection(**kwargs: Any) -> None:
    _stats["connections"] += 1


def _universe() -> Any:
    """The process's one application, built on first use (as a view would)."""
    global _app
    with _app_lock:
        if _app is None:
            from eventsourcing.application import Application
            from eventsourcing.domain import Aggregate, event

            class World(Aggregate):
                def __init__(self) -> None:
                    self.history: list[str] = []

                @event("SomethingHappened")
                def make_it_so(self, what: str) -> None:
                    self.history.append(what)

            class Universe(Application[Any]):
                def create_world(self) -> Any:
                    world = World()
                    self.save(world)
                    return world.id

                def make_it_so(self, world_id: Any, what: str) -> None:
                    world = self.repository.get(world_id)
                    world.make_it_so(what)
                    self.save(world)

                def history(self, world_id: Any) -> list[str]:
                    return list(self.repository.get(world_id).history)

            _app = Universe(env={"PERSISTENCE_MODULE": "eventsourcing_django"})
        return _app


def _views() -> list[Any]:
    from uuid import UUID

    from django.http import HttpRequest, JsonResponse
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt

    @csrf_exempt
    def worlds(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"id": str(_universe().create_world())}, status=201)

    @csrf_exempt
    def world(request: HttpRequest, world_id: str) -> JsonResponse:
        universe = _universe()
        if request.method == "POST":
            universe.make_it_so(UUID(world_id), request.body.decode() or "thing")
            return JsonResponse({"ok": True})
        return JsonResponse({"history": universe.history(UUID(world_id))})

    def stats(request: HttpRequest) -> JsonResponse:
        return JsonResponse(dict(_stats))

    return [
        path("worlds/", worlds),
        path("worlds/<str:world_id>/", world),
        path("stats/", stats),
    ]


if os.environ.get("ESDJ_BENCH_HTTP_SERVER"):
    urlpatterns = _views()


# The clients ---------------------------------------------------------------------


def client(port: int, requests: int, results: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    done = 0
    world_id = None
    while done < requests:
        if world_id is None or done % 10 == 0:
            conn.request("POST", "/worlds/", body=b"")
            world_id = json.loads(conn.getresponse().read())["id"]
        elif done % 2:
            conn.request("POST", f"/worlds/{world_id}/", body=b"dinosaurs")
            conn.getresponse().read()
        else:
            conn.request("GET", f"/worlds/{world_id}/")
            conn.getresponse().read()
        done += 1
    conn.close()
    results.append(done)


def one_round(
    conn_max_age: int, requests: int, pg: dict[str, str], port: int
) -> tuple[float, float]:
    """Requests per second, and connections opened per request."""
    import psycopg

    dbname = f"esdj_bench_http_{os.getpid()}_{conn_max_age}"
    admin = psycopg.connect(
        host=pg["host"],
        port=pg["port"],
        user=pg["user"],
        password=pg["password"],
        dbname="postgres",
        autocommit=True,
    )
    admin.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
    admin.execute(f'CREATE DATABASE "{dbname}"')
    env = {
        **os.environ,
        "ESDJ_BENCH_HTTP_SERVER": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(Path(__file__).parent)]),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, json, bench_http; "
            "bench_http.serve(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), "
            "json.loads(sys.argv[4]))",
            str(port),
            dbname,
            str(conn_max_age),
            json.dumps(pg),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            msg = "the benchmark server did not start"
            raise RuntimeError(msg)
        _wait_for_port(port)
        results: list[int] = []
        threads = [
            threading.Thread(target=client, args=(port, requests // CLIENTS, results))
            for _ in range(CLIENTS)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        total = sum(results)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/stats/")
        opened = json.loads(conn.getresponse().read())["connections"]
        conn.close()
        return total / elapsed, opened / total
    finally:
        server.terminate()
        server.wait()
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.close()


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def run_http(rounds: int, requests: int, pg: dict[str, str], port: int) -> str:
    """Measure both settings, ``rounds`` times; return the table."""
    rates: dict[int, list[float]] = {age: [] for age in CONN_MAX_AGES}
    per_request: dict[int, list[float]] = {age: [] for age in CONN_MAX_AGES}
    for n in range(rounds):
        order = CONN_MAX_AGES if n % 2 == 0 else CONN_MAX_AGES[::-1]
        for age in order:
            rate, opened = one_round(age, requests, pg, port)
            rates[age].append(rate)
            per_request[age].append(opened)
            print(
                f"  round {n + 1}, CONN_MAX_AGE={age}: {rate:,.0f} requests/s, "
                f"{opened:.3f} connections opened per request",
                flush=True,
            )
    lines = [
        f"HTTP through Django's threaded server, PostgreSQL, {CLIENTS} keep-alive "
        f"clients, {requests:,} requests a round (create 1 in 10, then commands "
        "and queries alternating):",
        "",
        "| CONN_MAX_AGE | requests/s median | min-max | connections opened "
        "per request (median) |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for age in CONN_MAX_AGES:
        lines.append(
            f"| {age} | {statistics.median(rates[age]):,.0f} | "
            f"{min(rates[age]):,.0f}-{max(rates[age]):,.0f} | "
            f"{statistics.median(per_request[age]):.3f} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", default="5432")
    parser.add_argument("--pg-user", default="postgres")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    pg = {
        "host": args.pg_host,
        "port": str(args.pg_port),
        "user": args.pg_user,
        "password": os.environ.get("PGPASSWORD", ""),
    }
    print(run_http(args.rounds, args.requests, pg, args.port))


if __name__ == "__main__":
    main()
