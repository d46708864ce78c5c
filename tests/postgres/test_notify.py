"""PostgreSQL: a NOTIFY that fails after the events committed loses nothing."""

from __future__ import annotations

from django.db import transaction

from tests.test_insert_paths import RecorderCase, events


class TestNotify(RecorderCase):
    def test_failed_notify_is_logged_not_raised(self) -> None:
        self.recorder._notify_statement = "NOTIFY x; SELECT no_such_function()"
        with self.assertLogs("eventsourcing_django.recorders", "ERROR"):
            ids = self.recorder.insert_events(events(2))
        self.assertEqual(self.stored_ids(), ids)
        logs = self.assertLogs("eventsourcing_django.recorders", "ERROR")
        with logs, transaction.atomic():
            ids = self.recorder.insert_events(events(2))
        self.assertEqual(self.stored_ids()[-2:], ids)
