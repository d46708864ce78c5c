"""PostgreSQL: a connection the server ended is discarded and replaced, outside
the caller's transaction; inside it, the error is the caller's.

The server ends only this test's own session (``pg_terminate_backend``), as a
restart or a failover would; tests/postgres/test_restarts.py restarts a whole
server of its own.
"""

from __future__ import annotations

from uuid import uuid4

from django.db import connections, transaction
from django.test import override_settings
from eventsourcing.persistence import OperationalError, StoredEvent

from eventsourcing_django.errors import ConnectionLostError
from eventsourcing_django.recorders import DjangoApplicationRecorder
from tests.base import DjangoDBTestCase


def end_this_threads_session(alias: str = "default") -> None:
    """Have the server end this thread's session on ``alias``, as a restart does."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [pid] = cursor.fetchone() or [None]
    other = connections.create_connection(alias)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()


def event() -> StoredEvent:
    return StoredEvent(uuid4(), 1, "topic", b"state")


class TestReconnect(DjangoDBTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.recorder = DjangoApplicationRecorder("Reconnected")
        self.recorder.create_table()
        self.recorder.insert_events([event()])

    def test_a_read_in_the_main_thread_reconnects_and_succeeds(self) -> None:
        before = connections["default"].connection
        end_this_threads_session()
        self.assertEqual(self.recorder.max_notification_id(), 1)
        self.assertIsNot(connections["default"].connection, before)

    @override_settings(EVENTSOURCING_RETRIES=0)
    def test_without_retries_the_read_fails_once_and_the_next_call_reconnects(
        self,
    ) -> None:
        end_this_threads_session()
        with self.assertRaises(ConnectionLostError) as info:
            self.recorder.max_notification_id()
        self.assertIn("the next call reconnects", str(info.exception))
        self.assertEqual(self.recorder.max_notification_id(), 1)

    def test_a_write_cut_off_is_raised_not_sent_twice_and_the_next_one_works(
        self,
    ) -> None:
        end_this_threads_session()
        # The write reached a connection the server had ended: it may have been
        # committed for all the recorder knows, so it says so instead of
        # sending it again.
        with self.assertRaises(ConnectionLostError) as info:
            self.recorder.insert_events([event()])
        self.assertIn("may or may not have been committed", str(info.exception))
        self.assertEqual(self.recorder.insert_events([event()]), [2])

    def test_inside_the_callers_atomic_block_the_error_is_the_callers(self) -> None:
        with self.assertRaises(OperationalError) as info, transaction.atomic():
            self.recorder.max_notification_id()
            end_this_threads_session()
            self.recorder.max_notification_id()
        # Not retried, not discarded by the recorder: Django rolls back the
        # caller's block and closes the connection as it exits.
        self.assertNotIsInstance(info.exception, ConnectionLostError)
        self.assertEqual(self.recorder.max_notification_id(), 1)
