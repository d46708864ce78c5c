"""Stories of SQLite with Django's default settings: files come up in WAL mode.

Each test makes a SQLite alias of its own, with what ``django-admin
startproject`` gives (no ``OPTIONS``), so it runs whatever database the suite
runs on.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import TestCase
from uuid import uuid4

import pytest
from django.db import connections, transaction
from django.test import override_settings
from eventsourcing.persistence import IntegrityError, StoredEvent

from eventsourcing_django.dialects.sqlite import journal_mode_of_file
from eventsourcing_django.recorders import DjangoApplicationRecorder

ALIAS = "sqlite_defaults"


@pytest.fixture(autouse=True)
def _database_access(django_db_blocker: Any) -> Iterator[None]:
    # Django's test cases allow only the aliases they know of when they start;
    # these tests add theirs, and clean up after themselves.
    with django_db_blocker.unblock():
        yield


@contextmanager
def sqlite_alias(name: str, **extra: Any) -> Iterator[str]:
    """An alias with Django's default settings for SQLite, on database ``name``."""
    settings_dict = {"ENGINE": "django.db.backends.sqlite3", "NAME": name, **extra}
    configured = connections.configure_settings({"default": {}, ALIAS: settings_dict})
    connections.settings[ALIAS] = configured[ALIAS]
    try:
        yield ALIAS
    finally:
        connections[ALIAS].close()
        del connections[ALIAS]
        del connections.settings[ALIAS]


def journal_mode(path: Path) -> str:
    """The journal mode a new connection to ``path`` finds."""
    connection = sqlite3.connect(path)
    try:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        connection.close()


def events(count: int) -> list[StoredEvent]:
    originator_id = uuid4()
    return [
        StoredEvent(originator_id, v, "topic", b"state") for v in range(1, count + 1)
    ]


class SQLiteFileCase(TestCase):
    def setUp(self) -> None:
        super().setUp()
        directory = tempfile.TemporaryDirectory(prefix="esdj-wal-")
        self.addCleanup(directory.cleanup)
        self.path = Path(directory.name) / "db.sqlite3"

    def recorder(self, alias: str) -> DjangoApplicationRecorder:
        recorder = DjangoApplicationRecorder("WalApp", using=alias)
        recorder.create_table()
        return recorder


class TestWAL(SQLiteFileCase):
    def test_a_new_file_database_comes_up_in_wal(self) -> None:
        with sqlite_alias(str(self.path)) as alias:
            recorder = self.recorder(alias)
            batch = events(3)
            recorder.insert_events(batch)
            self.assertEqual(recorder.select_events(batch[0].originator_id), batch)
        self.assertEqual(journal_mode_of_file(self.path), "wal")
        self.assertEqual(journal_mode(self.path), "wal")

    def test_a_file_in_rollback_mode_is_switched_when_a_recorder_connects(
        self,
    ) -> None:
        existing = sqlite3.connect(self.path)
        existing.execute("CREATE TABLE t (x INTEGER)")
        existing.commit()
        existing.close()
        self.assertEqual(journal_mode_of_file(self.path), "rollback")
        with sqlite_alias(str(self.path)) as alias:
            # Django connected first, for something else.
            connections[alias].ensure_connection()
            self.recorder(alias).insert_events(events(1))
        self.assertEqual(journal_mode(self.path), "wal")

    @override_settings(EVENTSOURCING_SQLITE_WAL=False)
    def test_the_opt_out_leaves_the_journal_mode_alone(self) -> None:
        with sqlite_alias(str(self.path)) as alias:
            recorder = self.recorder(alias)
            recorder.insert_events(events(2))
            self.assertEqual(len(recorder.select_notifications(None, 10)), 2)
        self.assertEqual(journal_mode_of_file(self.path), "rollback")
        self.assertEqual(journal_mode(self.path), "delete")

    def test_in_memory_databases_are_not_switched(self) -> None:
        for name in (":memory:", f"file:esdj{uuid4().hex}?mode=memory&cache=shared"):
            with self.subTest(name=name), sqlite_alias(name) as alias:
                recorder = self.recorder(alias)
                recorder.insert_events(events(2))
                self.assertEqual(len(recorder.select_notifications(None, 10)), 2)
                with connections[alias].cursor() as cursor:
                    cursor.execute("PRAGMA journal_mode")
                    self.assertEqual(cursor.fetchone()[0], "memory")


class TestWritesWithDefaultSettings(SQLiteFileCase):
    """Writes outside the caller's transaction begin their own, IMMEDIATE; inside
    it, they join it."""

    def test_contiguous_ids_and_nothing_of_a_failed_batch(self) -> None:
        with sqlite_alias(str(self.path)) as alias:
            recorder = self.recorder(alias)
            first = events(2)
            ids = recorder.insert_events(first[:1])
            more = recorder.insert_events(events(3))
            self.assertEqual(list(more or []), [ids[0] + 1, ids[0] + 2, ids[0] + 3])
            with self.assertRaises(IntegrityError):
                recorder.insert_events([*events(1), first[0]])
            self.assertEqual(len(recorder.select_notifications(None, 10)), 4)
            self.assertFalse(connections[alias].connection.in_transaction)
            recorder.insert_events(first[1:])
            self.assertEqual(len(recorder.select_notifications(None, 10)), 5)

    def test_in_callers_transaction_rolls_back_with_it(self) -> None:
        class Abort(Exception):
            pass

        with sqlite_alias(str(self.path)) as alias:
            recorder = self.recorder(alias)
            recorder.insert_events(events(1))  # the connection is open
            with self.assertRaises(Abort), transaction.atomic(using=alias):
                recorder.insert_events(events(2))
                raise Abort
            self.assertEqual(len(recorder.select_notifications(None, 10)), 1)

    def test_a_writer_of_another_connection_is_waited_for(self) -> None:
        with sqlite_alias(str(self.path), OPTIONS={"timeout": 0.1}) as alias:
            recorder = self.recorder(alias)
            recorder.insert_events(events(1))
            other = sqlite3.connect(self.path, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                # The write lock is taken before anything is written: the
                # insert waits for it (here, too short a time) and fails whole.
                with self.assertRaises(Exception) as raised:
                    recorder.insert_events(events(2))
                self.assertIn("locked", str(raised.exception))
                other.execute("ROLLBACK")
            finally:
                other.close()
            recorder.insert_events(events(2))
            self.assertEqual(len(recorder.select_notifications(None, 10)), 3)
