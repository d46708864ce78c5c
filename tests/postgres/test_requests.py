"""Requests served by a threaded server use one database connection each.

Django's live server runs each client connection in a thread of its own, as
``runserver``, gunicorn ``gthread`` and ASGI thread pools run requests off the
main thread. The library's calls made in a request must use the request's
connection and leave its life to Django: opened once per request and closed at
its end with ``CONN_MAX_AGE=0``, kept across requests with ``CONN_MAX_AGE>0``.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.db import connections
from django.test import LiveServerTestCase, override_settings

from eventsourcing_django.applications import close_applications
from tests.base import drop_application_tables
from tests.testapp.middleware import HEADER

MIDDLEWARE = [
    "tests.testapp.middleware.ConnectionCountMiddleware",
    "django.middleware.common.CommonMiddleware",
]


@override_settings(MIDDLEWARE=MIDDLEWARE)
class TestConnectionsPerRequest(LiveServerTestCase):
    databases = frozenset({"default"})

    def setUp(self) -> None:
        close_applications()
        self.addCleanup(drop_application_tables, "default")
        self.addCleanup(close_applications)

    @contextmanager
    def conn_max_age(self, seconds: int) -> Iterator[None]:
        # The server's threads build their connections from this same dict.
        settings_dict = connections.settings["default"]
        saved = settings_dict.get("CONN_MAX_AGE", 0)
        settings_dict["CONN_MAX_AGE"] = seconds
        try:
            yield
        finally:
            settings_dict["CONN_MAX_AGE"] = saved

    def session(self) -> http.client.HTTPConnection:
        """One keep-alive connection: its requests are served by one thread."""
        address = urlsplit(self.live_server_url)
        return http.client.HTTPConnection(address.hostname or "", address.port)

    def call(
        self, http_conn: http.client.HTTPConnection, method: str, path: str, **form: str
    ) -> tuple[Any, int]:
        body = urlencode(form) if form else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        http_conn.request(method, path, body=body, headers=headers)
        response = http_conn.getresponse()
        payload = json.loads(response.read())
        self.assertLess(response.status, 300, payload)
        return payload, int(response.headers[HEADER])

    def story(self, http_conn: http.client.HTTPConnection) -> list[int]:
        """Create a world, make things happen, read its history; return the
        connections each request opened."""
        opened = []
        created, n = self.call(http_conn, "POST", "/universe/worlds/")
        opened.append(n)
        world = f"/universe/worlds/{created['world_id']}/"
        for what in ("dinosaurs", "trucks"):
            _, n = self.call(http_conn, "POST", world + "make-it-so/", what=what)
            opened.append(n)
        history, n = self.call(http_conn, "GET", world)
        opened.append(n)
        self.assertEqual(history, {"history": ["dinosaurs", "trucks"]})
        return opened

    def test_one_connection_per_request_without_persistent_connections(self) -> None:
        with self.conn_max_age(0):
            http_conn = self.session()
            self.story(http_conn)  # builds the application, creates its tables
            opened = self.story(http_conn)
            http_conn.close()
        # A command reads the aggregate and writes an event: one connection,
        # not one per library call.
        self.assertEqual(opened, [1, 1, 1, 1])

    def test_no_new_connection_after_the_first_request_with_conn_max_age(self) -> None:
        with self.conn_max_age(60):
            http_conn = self.session()
            opened = self.story(http_conn) + self.story(http_conn)
            http_conn.close()
        self.assertEqual(opened[0], 1)
        self.assertEqual(opened[1:], [0] * 7)
