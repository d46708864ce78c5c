"""The ways an application recorder inserts: alone, or in the caller's transaction."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any
from unittest import mock
from uuid import uuid4

from django.contrib.auth.models import Group
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext
from eventsourcing.persistence import IntegrityError, StoredEvent

from eventsourcing_django.recorders import DjangoApplicationRecorder
from tests.base import DjangoDBTestCase, is_postgres


def events(count: int, first_version: int = 1) -> list[StoredEvent]:
    originator_id = uuid4()
    return [
        StoredEvent(originator_id, version, "topic", b"state")
        for version in range(first_version, first_version + count)
    ]


class Executes:
    """Records the statements Django executes on an alias, less its BEGINs."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: Any,
    ) -> Any:
        if not sql.startswith("BEGIN"):  # Django's SQLite backend begins so
            self.sql.append(sql)
        return execute(sql, params, many, context)


class RecorderCase(DjangoDBTestCase):
    """An application recorder with its table, and the IDs it has stored."""

    def setUp(self) -> None:
        super().setUp()
        self.recorder = DjangoApplicationRecorder("TestApp")
        self.recorder.create_table()

    def stored_ids(self) -> list[int]:
        return [n.id for n in self.recorder.select_notifications(None, 100)]


class TestInsertPaths(RecorderCase):
    def test_alone_one_execute_inserts_and_commits_then_notifies(self) -> None:
        executes = Executes()
        with connections["default"].execute_wrapper(executes):
            ids = self.recorder.insert_events(events(3))
        self.assertEqual(len(ids or []), 3)
        self.assertEqual(self.stored_ids(), ids)
        if is_postgres():
            # The lock travels with the insert; NOTIFY follows the commit.
            self.assertEqual(len(executes.sql), 2, executes.sql)
            self.assertIn("LOCK TABLE", executes.sql[0])
            self.assertTrue(executes.sql[1].startswith("NOTIFY"), executes.sql)
        else:
            # SQLite: the insert alone. MariaDB: its lock row, then the insert
            # (Django's mysql backend sends one statement an execute).
            expected = len(self.recorder._lock_statements) + 1
            self.assertEqual(len(executes.sql), expected, executes.sql)
            self.assertTrue(executes.sql[-1].startswith("INSERT"), executes.sql)

    def test_conflict_alone_commits_nothing(self) -> None:
        first = events(2)
        self.recorder.insert_events(first[:1])
        clash = [*events(1), first[0]]
        with self.assertRaises(IntegrityError):
            self.recorder.insert_events(clash)
        self.assertEqual(len(self.stored_ids()), 1)
        # The connection is still usable.
        self.recorder.insert_events(first[1:])
        self.assertEqual(len(self.stored_ids()), 2)

    def test_in_callers_transaction_commits_with_it(self) -> None:
        with transaction.atomic():
            Group.objects.create(name="with events")
            ids = self.recorder.insert_events(events(2))
        self.assertTrue(Group.objects.filter(name="with events").exists())
        self.assertEqual(self.stored_ids(), ids)

    def test_in_callers_transaction_rolls_back_with_it(self) -> None:
        class Abort(Exception):
            pass

        with self.assertRaises(Abort), transaction.atomic():
            Group.objects.create(name="without events")
            self.recorder.insert_events(events(2))
            raise Abort
        self.assertFalse(Group.objects.exists())
        self.assertEqual(self.stored_ids(), [])

    def test_statements_one_by_one_when_the_driver_binds_server_side(self) -> None:
        dialect = self.recorder.dialect
        with mock.patch.object(dialect, "sends_many_statements", return_value=False):
            executes = Executes()
            with connections["default"].execute_wrapper(executes):
                ids = self.recorder.insert_events(events(3))
        self.assertEqual(self.stored_ids(), ids)
        # The lock statements, the insert, then NOTIFY (PostgreSQL).
        expected = len(self.recorder._lock_statements) + 1 + is_postgres()
        self.assertEqual(len(executes.sql), expected, executes.sql)

    def test_in_callers_transaction_notifies_after_its_commit(self) -> None:
        executes = Executes()
        with connections["default"].execute_wrapper(executes):
            with transaction.atomic():
                self.recorder.insert_events(events(2))
                self.assertFalse(any(s.startswith("NOTIFY") for s in executes.sql))
            notifies = [s for s in executes.sql if s.startswith("NOTIFY")]
        self.assertEqual(len(notifies), 1 if is_postgres() else 0)

    def test_batches_of_any_size_in_either_form(self) -> None:
        # PostgreSQL lists short batches in VALUES and sends long ones as arrays.
        for count in (1, 2, 31, 32, 33, 100, 1001):
            batch = events(count)
            ids = self.recorder.insert_events(batch)
            self.assertEqual(len(ids or []), count)
            self.assertEqual(list(ids or []), list(range(ids[0], ids[0] + count)))
            self.assertEqual(self.recorder.select_events(batch[0].originator_id), batch)


class TestShortPath(RecorderCase):
    """On an open connection, calls run on the driver's cursor; whatever watches
    Django's cursors still sees every statement."""

    def test_an_open_connection_needs_no_django_cursor(self) -> None:
        self.recorder.insert_events(events(1))  # the connection is open now
        connection = connections["default"]
        with mock.patch.object(
            connection, "cursor", wraps=connection.cursor
        ) as django_cursor:
            batch = events(3)
            ids = self.recorder.insert_events(batch)
            self.assertEqual(self.recorder.select_events(batch[0].originator_id), batch)
            notifications = self.recorder.select_notifications(ids[0], 10)
        self.assertEqual([n.id for n in notifications], ids)
        self.assertEqual(len(ids or []), 3)
        # MariaDB keeps Django's cursor (see docs/decisions.md).
        self.assertEqual(django_cursor.called, not self.recorder.dialect.short_path)

    def test_queries_captured_as_before(self) -> None:
        self.recorder.insert_events(events(1))
        with CaptureQueriesContext(connections["default"]) as captured:
            batch = events(2)
            self.recorder.insert_events(batch)
            self.recorder.select_events(batch[0].originator_id)
        statements = [q["sql"] for q in captured.captured_queries]
        self.assertTrue(any("INSERT INTO" in s for s in statements), statements)
        self.assertTrue(any(s.startswith("SELECT") for s in statements), statements)

    def test_errors_are_the_librarys_on_either_path(self) -> None:
        batch = events(1)
        self.recorder.insert_events(batch)
        connection = connections["default"]
        # An execute_wrapper sends calls the long way, through Django's cursor.
        for watch in (contextlib.nullcontext(), connection.execute_wrapper(Executes())):
            with self.subTest(watch=watch), watch, self.assertRaises(IntegrityError):
                self.recorder.insert_events(batch)
        self.assertEqual(len(self.stored_ids()), 1)


class TestTextOriginatorIDs(DjangoDBTestCase):
    def test_strings_in_either_form(self) -> None:
        recorder = DjangoApplicationRecorder("TestApp", originator_id_type="text")
        recorder.create_table()
        for count in (1, 100):
            batch = [
                StoredEvent(f"account-{count}", version, "topic", b"state")
                for version in range(1, count + 1)
            ]
            recorder.insert_events(batch)
            self.assertEqual(recorder.select_events(f"account-{count}"), batch)


class TestTheThreadsConnection(RecorderCase):
    """A recorder keeps its thread's Django connection: the same wrapper that
    ``connections[alias]`` gives in that thread, never another thread's, and
    Django's own look-up wherever an event loop runs."""

    def test_the_wrapper_of_this_thread(self) -> None:
        self.assertIs(self.recorder.connection, connections[self.recorder.using])
        self.assertIs(self.recorder.connection, self.recorder.connection)

    def test_another_thread_gets_its_own(self) -> None:
        import threading

        seen: dict[str, Any] = {}

        def in_thread() -> None:
            seen["recorder"] = self.recorder.connection
            seen["django"] = connections[self.recorder.using]
            connections.close_all()

        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join()
        self.assertIs(seen["recorder"], seen["django"])
        self.assertIsNot(seen["recorder"], self.recorder.connection)

    def test_where_a_loop_runs_django_looks_it_up(self) -> None:
        import asyncio

        kept = self.recorder.connection

        async def look_up() -> tuple[Any, Any]:
            return self.recorder.connection, connections[self.recorder.using]

        ours, django = asyncio.run(look_up())
        # In a task Django gives a wrapper of the task's, not this thread's.
        self.assertIs(ours, django)
        self.assertIsNot(ours, kept)
