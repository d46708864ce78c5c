"""Closing the database connections that worker threads open.

Django keeps one connection per thread and alias, and closes them only at the end
of a request. Threads started by the library (subscriptions, runners, the 100
workers of its test suite) have no request, so their connections would stay open
until garbage collection, and a PostgreSQL server allows 100 in all.

Each thread that uses a recorder gets a thread-local :class:`_Closer`. Python drops
a thread's locals when the thread ends, so the closer's ``__del__`` runs then and
closes the driver connections that the thread opened.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from django.db import connections

_local = threading.local()


class _Closer:
    __slots__ = ("connections",)

    def __init__(self) -> None:
        # alias -> the driver's connection (not Django's wrapper: the wrapper
        # refers to itself through its helpers and would wait for the cycle GC).
        self.connections: dict[str, Any] = {}

    def __del__(self) -> None:
        for raw in self.connections.values():
            with contextlib.suppress(Exception):
                raw.close()


def close_at_thread_exit(alias: str) -> None:
    """Close this thread's connection to ``alias`` when the thread ends."""
    raw = connections[alias].connection
    if raw is None:
        return
    closer: _Closer | bool | None = getattr(_local, "closer", None)
    if closer is None:
        # The main thread's connections are Django's to manage.
        is_main = threading.current_thread() is threading.main_thread()
        closer = _local.closer = False if is_main else _Closer()
    if isinstance(closer, _Closer) and closer.connections.get(alias) is not raw:
        closer.connections[alias] = raw
