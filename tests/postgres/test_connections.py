"""PostgreSQL: threads close what they open; subscriptions listen and poll."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from uuid import uuid4

from django.db import connections
from eventsourcing.persistence import StoredEvent

from eventsourcing_django.dialects import PostgresDialect
from eventsourcing_django.recorders import DjangoApplicationRecorder
from tests.base import DjangoDBTestCase


def open_connections() -> int:
    """Sessions on the test database other than this thread's."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def wait_for_connections(expected: int, timeout: float = 5.0) -> int:
    """The count once it is ``expected``, or after ``timeout`` what it is then."""
    deadline = time.monotonic() + timeout
    count = open_connections()
    while count != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        count = open_connections()
    return count


def settled_connections(timeout: float = 5.0) -> int:
    """The count once it stops changing: sessions that earlier tests (or their
    processes) are still closing are gone from it."""
    deadline = time.monotonic() + timeout
    last = open_connections()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        count = open_connections()
        if count == last:
            return count
        last = count
    return last


class TestDriver(DjangoDBTestCase):
    def test_the_suite_runs_on_the_driver_it_was_asked_for(self) -> None:
        connection = connections["default"]
        connection.ensure_connection()
        module = type(connection.connection).__module__
        expected = os.environ.get("ESDJ_PG_DRIVER", "psycopg")
        self.assertEqual(module.split(".")[0], expected)


class TestWorkerThreadConnections(DjangoDBTestCase):
    def test_many_threads_share_a_bounded_number_and_leave_none_open(self) -> None:
        recorder = DjangoApplicationRecorder("Busy")
        recorder.create_table()
        before = settled_connections()
        peak = 0
        done = threading.Event()

        def sample() -> None:
            # Its own connection, and the main thread's, are not the workers'.
            nonlocal peak
            try:
                while not done.is_set():
                    peak = max(peak, open_connections() - 1)
                    time.sleep(0.005)
            finally:
                connections.close_all()

        def write() -> None:
            recorder.insert_events([StoredEvent(uuid4(), 1, "t", b"s")])
            recorder.select_notifications(None, 1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            with ThreadPoolExecutor(max_workers=60) as executor:
                for future in [executor.submit(write) for _ in range(600)]:
                    future.result()
        finally:
            done.set()
            sampler.join()
        self.assertEqual(recorder.max_notification_id(), 600)
        # At most EVENTSOURCING_MAX_WORKER_CONNECTIONS (15) were open at once
        # (far fewer than the 60 threads; the server may take a few ms to see a
        # closed session go, hence a little slack), and none is left at the end.
        self.assertGreater(peak, before)
        self.assertLessEqual(peak, before + 15 + 5)
        self.assertEqual(wait_for_connections(before), before)

    def test_a_subscription_closes_its_connections_when_stopped(self) -> None:
        recorder = DjangoApplicationRecorder("Subscribed")
        recorder.create_table()
        before = settled_connections()
        with recorder.subscribe(gt=None) as subscription:
            recorder.insert_events([StoredEvent(uuid4(), 1, "t", b"s")])
            self.assertEqual(next(subscription).id, 1)
            # A listening connection and a pulling connection (the listener's
            # thread may still be connecting when the first event arrives).
            self.assertEqual(wait_for_connections(before + 2), before + 2)
        self.assertEqual(wait_for_connections(before), before)


class TestNotifications(DjangoDBTestCase):
    def test_a_write_from_another_process_wakes_the_subscription(self) -> None:
        recorder = DjangoApplicationRecorder("Woken")
        recorder.create_table()
        # Another process: a recorder this subscription does not know about.
        elsewhere = DjangoApplicationRecorder("Woken")
        received: list[int] = []
        with recorder.subscribe(gt=None) as subscription:
            time.sleep(0.2)  # let it LISTEN
            started = time.monotonic()
            elsewhere.insert_events([StoredEvent(uuid4(), 1, "t", b"s")])
            received.append(next(subscription).id)
            elapsed = time.monotonic() - started
        self.assertEqual(received, [1])
        # Woken by NOTIFY, not by the 1-second poll.
        self.assertLess(elapsed, PostgresDialect.poll_interval)

    def test_a_lost_notification_does_not_block_the_subscription(self) -> None:
        recorder = DjangoApplicationRecorder("Lost")
        recorder.create_table()
        with recorder.subscribe(gt=None) as subscription:
            # Written without NOTIFY, as if the notification were lost.
            with connections["default"].cursor() as cursor:
                cursor.execute(
                    "INSERT INTO lost_events (originator_id, originator_version, "
                    "topic, state) VALUES (%s, 1, 't', 's')",
                    [uuid4()],
                )
            found = threading.Event()

            def read() -> None:
                next(subscription)
                found.set()

            reader = threading.Thread(target=read)
            reader.start()
            self.assertTrue(found.wait(timeout=3 * PostgresDialect.poll_interval))
            reader.join()

    def test_channel_names_differ_per_schema_and_fit_63_bytes(self) -> None:
        connection = connections["default"]
        a = PostgresDialect(connection, schema="tenant_a").channel_name(
            "universe_events"
        )
        b = PostgresDialect(connection, schema="tenant_b").channel_name(
            "universe_events"
        )
        self.assertNotEqual(a, b)
        long_schema = "s" * 63
        c = PostgresDialect(connection, schema=long_schema).channel_name(
            "x" * 50 + "_events"
        )
        d = PostgresDialect(connection, schema=long_schema[:-1] + "t").channel_name(
            "x" * 50 + "_events"
        )
        self.assertLessEqual(len(c.encode()), 63)
        self.assertNotEqual(c, d)
