"""Counts the database connections a request opens, for the connection tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db.backends.signals import connection_created
from django.http import HttpRequest, HttpResponse

HEADER = "X-Connections-Opened"


class ConnectionCountMiddleware:
    """Sets ``X-Connections-Opened``: connections opened in this request's thread
    while the request was handled."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        thread = threading.current_thread()
        opened = 0

        def count(**kwargs: Any) -> None:
            nonlocal opened
            if threading.current_thread() is thread:
                opened += 1

        connection_created.connect(count, weak=False)
        try:
            response = self.get_response(request)
        finally:
            connection_created.disconnect(count)
        response[HEADER] = str(opened)
        return response
