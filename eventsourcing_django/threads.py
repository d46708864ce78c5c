"""Closing the database connections that worker threads open.

Django keeps one connection per thread and alias, and closes it at the end of a
request (or keeps it, by ``CONN_MAX_AGE`` or a pool). A call made while Django
handles a request, in whatever thread the server runs it (``runserver``,
gunicorn ``gthread``, an ASGI thread pool), uses the request's connection and
leaves its life to Django: one connection per request, none with persistent
connections. Threads started by the library (runners, subscriptions, the 100
workers of its test suite) have no request, so their connections would stay open
and a PostgreSQL server allows 100 in all. Two rules keep them in check:

- In a thread other than the main thread, a recorder call that had to open the
  thread's connection closes it again when it returns, unless it ran inside the
  caller's ``transaction.atomic()`` block, or the alias keeps persistent
  connections (``CONN_MAX_AGE`` other than 0, which Django users choose on purpose).
  With Django's connection pool (psycopg 3, ``OPTIONS={"pool": True}``) closing
  returns the connection to the pool.
- Whatever such a thread still holds is closed when the thread ends: each thread
  that uses a recorder gets a thread-local :class:`_Closer`, and Python drops a
  thread's locals when the thread ends, so the closer's ``__del__`` runs then.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

_local = threading.local()


def _request_started(**kwargs: Any) -> None:
    _local.in_request = True


def _request_finished(**kwargs: Any) -> None:
    _local.in_request = False


# Django sends both in the thread that runs the request's view (for ASGI, in the
# request's thread-sensitive executor), which is where our calls run.
request_started.connect(_request_started, dispatch_uid="eventsourcing_django")
request_finished.connect(_request_finished, dispatch_uid="eventsourcing_django")


def in_request() -> bool:
    """Whether this thread is handling a request for Django."""
    return bool(getattr(_local, "in_request", False))


class _Closer:
    __slots__ = ("connections",)

    def __init__(self) -> None:
        # alias -> the driver's connection (not Django's wrapper: the wrapper
        # refers to itself through its helpers and would wait for the cycle GC).
        self.connections: dict[str, Any] = {}

    def track(self, connection: BaseDatabaseWrapper) -> None:
        raw = connection.connection
        if raw is not None and self.connections.get(connection.alias) is not raw:
            self.connections[connection.alias] = raw

    def __del__(self) -> None:
        for raw in self.connections.values():
            with contextlib.suppress(Exception):
                raw.close()


def _closer() -> _Closer | None:
    """This thread's closer; None in the main thread, whose connections are
    Django's to manage."""
    closer: _Closer | bool | None = getattr(_local, "closer", None)
    if closer is None:
        is_main = threading.current_thread() is threading.main_thread()
        closer = _local.closer = False if is_main else _Closer()
    return closer if isinstance(closer, _Closer) else None


def _keeps_connections() -> bool:
    return bool(getattr(_local, "keep", False))


@contextlib.contextmanager
def keep_connections() -> Iterator[None]:
    """Let this thread keep its connections between calls (a long-lived loop,
    such as a subscription's), and close them when the block ends."""
    _local.keep = True
    try:
        yield
    finally:
        _local.keep = False
        for alias in connections:
            with contextlib.suppress(Exception):
                connections[alias].close()


_semaphores: dict[str, threading.BoundedSemaphore] = {}
_semaphores_guard = threading.Lock()

#: Default for settings.EVENTSOURCING_MAX_WORKER_CONNECTIONS (like the library's
#: own pool: 5 connections and 10 more on demand).
DEFAULT_MAX_WORKER_CONNECTIONS = 15


def _semaphore(alias: str) -> threading.BoundedSemaphore:
    try:
        return _semaphores[alias]
    except KeyError:
        with _semaphores_guard:
            if alias not in _semaphores:
                limit = getattr(
                    settings,
                    "EVENTSOURCING_MAX_WORKER_CONNECTIONS",
                    DEFAULT_MAX_WORKER_CONNECTIONS,
                )
                _semaphores[alias] = threading.BoundedSemaphore(int(limit))
            return _semaphores[alias]


def note_open(connection: BaseDatabaseWrapper) -> None:
    """What :func:`connection_scope` does around a call on a connection that is
    already open: a worker thread's closer remembers it (the recorders' short
    path, which needs no context manager)."""
    closer = _closer()
    if closer is not None:
        closer.track(connection)


@contextlib.contextmanager
def connection_scope(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """Around one recorder call on ``connection``: apply the rules above.

    Calls that will open and close a worker thread's connection take turns, at
    most ``EVENTSOURCING_MAX_WORKER_CONNECTIONS`` at once per alias, so many
    threads cannot open more connections than the server allows.
    """
    closer = _closer()
    if (
        closer is None
        or in_request()
        or connection.connection is not None
        or _keeps_connections()
        or connection.settings_dict.get("CONN_MAX_AGE", 0) != 0
    ):
        try:
            yield
        finally:
            if closer is not None:
                closer.track(connection)
        return
    with _semaphore(connection.alias):
        try:
            yield
        finally:
            if connection.in_atomic_block:
                closer.track(connection)
            else:
                connection.close()
