"""PostgreSQL: the flat insert (a lock and the rows in one query) and what it
keeps per thread: the driver connection it has found fit, asked once."""

from __future__ import annotations

from unittest import mock

from django.db import connections
from django.test.utils import CaptureQueriesContext

from eventsourcing_django.recorders import DjangoApplicationRecorder
from tests.base import DjangoDBTestCase
from tests.test_insert_paths import events


class TestOneQuery(DjangoDBTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.recorder = DjangoApplicationRecorder("TestApp")
        self.recorder.create_table()
        self.connection = connections[self.recorder.using]

    def stored_ids(self) -> list[int]:
        return [n.id for n in self.recorder.select_notifications(None, 100)]

    def asked(self) -> mock.MagicMock:
        """Watch the dialect being asked whether a connection takes one query."""
        dialect = self.recorder.dialect
        return mock.patch.object(
            dialect, "sends_many_statements", wraps=dialect.sends_many_statements
        )

    def test_the_dialect_is_asked_once_per_driver_connection(self) -> None:
        with self.asked() as asked:
            first = self.recorder.insert_events(events(2))
            second = self.recorder.insert_events(events(3))
            self.assertEqual(asked.call_count, 1)
            # Django opens a new driver connection (the first call after goes
            # the long way, which asks too): it is asked about that one, once.
            self.connection.close()
            third = self.recorder.insert_events(events(1))
            fourth = self.recorder.insert_events(events(1))
            asked_after = asked.call_count
            fifth = self.recorder.insert_events(events(2))
            self.assertEqual(asked_after, 3)
            self.assertEqual(asked.call_count, asked_after)
            asked.assert_called_with(self.connection.connection)
        self.assertEqual(self.stored_ids(), [*first, *second, *third, *fourth, *fifth])

    def test_a_connection_closed_under_it_is_not_used_again(self) -> None:
        self.recorder.insert_events(events(1))
        kept = self.connection.connection
        # Closed behind Django's back: the driver knows, Django does not.
        kept.close()
        ids = self.recorder.insert_events(events(2))
        self.assertIsNot(self.connection.connection, kept)
        self.assertEqual(self.stored_ids(), [1, *ids])

    def test_each_thread_keeps_its_own(self) -> None:
        import threading

        self.recorder.insert_events(events(1))
        mine = self.recorder._this_thread.one_query_raw
        seen: dict[str, object] = {}

        def in_thread() -> None:
            try:
                seen["before"] = self.recorder._this_thread.one_query_raw
                self.recorder.insert_events(events(1))
                seen["after"] = self.recorder._this_thread.one_query_raw
                seen["driver"] = connections[self.recorder.using].connection
            finally:
                connections.close_all()

        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join()
        self.assertIs(mine, self.connection.connection)
        self.assertIsNone(seen["before"])
        self.assertIs(seen["after"], seen["driver"])
        self.assertIsNot(seen["after"], mine)
        self.assertEqual(len(self.stored_ids()), 2)

    def test_whatever_watches_django_sends_it_the_long_way(self) -> None:
        self.recorder.insert_events(events(1))  # the flat path from now on
        with CaptureQueriesContext(self.connection) as captured:
            self.recorder.insert_events(events(2))
        inserts = [q["sql"] for q in captured if "INSERT INTO" in q["sql"]]
        self.assertEqual(len(inserts), 1, captured.captured_queries)
        self.assertEqual(len(self.stored_ids()), 3)

    def test_a_pooled_connection_is_not_kept(self) -> None:
        # A pooled driver connection can come back to a thread after another,
        # and a worker thread's closer must hear of it every time: the recorder
        # asks on every call instead (the option is all it reads; Django made
        # this connection before, so no pool is built here).
        options = self.connection.settings_dict.setdefault("OPTIONS", {})
        with mock.patch.dict(options, {"pool": True}), self.asked() as asked:
            ids = [*self.recorder.insert_events(events(1))]
            ids += self.recorder.insert_events(events(2))
            ids += self.recorder.insert_events(events(3))
            self.assertIsNone(self.recorder._this_thread.one_query_raw)
            self.assertEqual(asked.call_count, 3)
        self.assertEqual(self.stored_ids(), ids)
        self.assertEqual(ids, list(range(1, 7)))
