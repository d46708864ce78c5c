"""Each application locks only its own table (or lock row): the story that the
vendors which lock tell in tests/postgres/ and tests/mariadb/."""

from __future__ import annotations

import threading
from uuid import uuid4

from django.db import connections, transaction
from eventsourcing.persistence import OperationalError, StoredEvent

from eventsourcing_django.recorders import DjangoApplicationRecorder
from tests.base import DjangoDBTestCase


def events(n: int = 1) -> list[StoredEvent]:
    originator_id = uuid4()
    return [StoredEvent(originator_id, v, "topic", b"state") for v in range(1, n + 1)]


class PerApplicationLocks(DjangoDBTestCase):
    """The story, told on each vendor that locks: a subclass sets how long a
    blocked writer waits, and the words of its vendor's lock timeout."""

    __test__ = False
    blocked_lock_timeout: float
    lock_timeout_message: str

    def test_two_applications_do_not_wait_for_each_others_lock(self) -> None:
        first = DjangoApplicationRecorder("First")
        second = DjangoApplicationRecorder("Second", lock_timeout=0.5)
        first.create_table()
        second.create_table()
        holding = threading.Event()
        release = threading.Event()
        errors: list[BaseException] = []

        def hold_first_lock() -> None:
            try:
                with transaction.atomic():
                    first.insert_events(events())
                    holding.set()
                    release.wait(timeout=10)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)
                holding.set()
            finally:
                connections.close_all()

        holder = threading.Thread(target=hold_first_lock)
        holder.start()
        try:
            self.assertTrue(holding.wait(timeout=10))
            # The second application commits while the first holds its lock...
            self.assertEqual(second.insert_events(events()), [1])
            self.assertEqual(second.max_notification_id(), 1)
            # ...whereas another writer of the first application has to wait.
            blocked = DjangoApplicationRecorder(
                "First", lock_timeout=self.blocked_lock_timeout
            )
            with self.assertRaises(OperationalError) as info:
                blocked.insert_events(events())
            self.assertIn(self.lock_timeout_message, str(info.exception))
        finally:
            release.set()
            holder.join()
        self.assertEqual(errors, [])
        self.assertEqual(first.max_notification_id(), 1)
