"""Upgrading from 0.x on PostgreSQL: into pinned schemas; an empty events table
filled in one transaction, its indexes built at the end, undone whole by a crash."""

from __future__ import annotations

import signal
import time
from typing import ClassVar

import pytest
from django.db import connections
from django.test import override_settings

from eventsourcing_django.upgrade import plan_upgrade
from tests.base import table_names
from tests.test_upgrade import (
    ENV,
    ENV_0X,
    ROUTED,
    Interrupted,
    UpgradeTestCase,
    recorded,
    run_on_0x,
    start_upgrade,
    upgrade,
    write_many_0x,
)
from tests.testapp.domain import Universe


def indexes(table: str) -> list[tuple[str, str]]:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
            "ORDER BY indexname",
            [table],
        )
        return cursor.fetchall()


def copying_in(table: str) -> bool:
    """Whether a session is in a transaction that has inserted into ``table``."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = "
            "current_database() AND pid <> pg_backend_pid() AND query LIKE %s",
            [f'INSERT INTO "{table}"%'],
        )
        return bool(cursor.fetchone()[0])  # type: ignore[index]


class TestUpgradeIntoSchemas(UpgradeTestCase):
    schemas: ClassVar[tuple[str, ...]] = ("upgraded",)

    @override_settings(
        EVENTSOURCING_SCHEMAS={"Universe": "upgraded", "WorldCounter": "upgraded"}
    )
    def test_pinned_applications_get_their_tables_in_their_schema(self) -> None:
        before = run_on_0x()
        out, _ = upgrade()
        self.assertIn("to database 'default', schema 'upgraded'", out)
        self.assertEqual(
            table_names("default", schema="upgraded"),
            {
                "universe_events",
                "universe_snapshots",
                "worldcounter_events",
                "worldcounter_snapshots",
                "worldcounter_tracking",
            },
        )
        # Nothing in the search path but the shared tables.
        self.assertEqual(
            table_names("default"),
            {"stored_events", "notification_tracking"},
        )
        universe, _ = self.assert_reads_the_same(before)
        self.assertEqual(universe.recorder.schema, "upgraded")
        universe.create_world()
        self.assertEqual(
            universe.recorder.max_notification_id(),
            before.universe.notifications[-1].id + 1,
        )

    @override_settings(**ROUTED, EVENTSOURCING_SCHEMAS={"Universe": "upgraded"})
    def test_routed_and_pinned(self) -> None:
        before = run_on_0x()
        out, _ = upgrade()
        self.assertIn(
            "Upgrading Universe (42 events, 6 snapshots) to database 'other', "
            "schema 'upgraded'",
            out,
        )
        self.assertEqual(
            table_names("other", schema="upgraded"),
            {"universe_events", "universe_snapshots"},
        )
        self.assert_reads_the_same(before)


class TestOneTransaction(UpgradeTestCase):
    def test_the_indexes_are_built_again_as_they_were(self) -> None:
        Universe(env=ENV).recorder  # noqa: B018 (creates the empty tables)
        made_by_the_recorder = indexes("universe_events")
        self.assertEqual(len(made_by_the_recorder), 2)
        before = run_on_0x()
        upgrade(verbosity=0)
        self.assertEqual(indexes("universe_events"), made_by_the_recorder)
        self.assert_reads_the_same(before)

    def test_an_interruption_undoes_the_whole_copy_of_the_table(self) -> None:
        before = run_on_0x(worlds=4, things=9)
        Universe(env=ENV).recorder  # noqa: B018
        made_by_the_recorder = indexes("universe_events")
        (copy,) = plan_upgrade("default", ["Universe"], batch_size=7).copies
        batches = 0

        def stop_after_three_batches(rows: int) -> None:
            nonlocal batches
            batches += 1
            if batches == 3:
                raise Interrupted

        with self.assertRaises(Interrupted):
            copy.run(stop_after_three_batches)
        self.assertEqual(copy.copied().events, 0)
        self.assertEqual(indexes("universe_events"), made_by_the_recorder)

        upgrade(verbosity=0)
        self.assert_reads_the_same(before)


class TestKilledInOneTransaction(UpgradeTestCase):
    @pytest.mark.crash
    def test_killed_mid_copy_then_run_again_equals_an_uninterrupted_copy(self) -> None:
        write_many_0x(worlds=400, things=19)
        expected = recorded(Universe(env=ENV_0X))

        process = start_upgrade("--batch-size=20")
        try:
            deadline = time.monotonic() + 60
            while not copying_in("universe_events"):
                self.assertIsNone(process.poll(), "finished before it was killed")
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.01)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        self.assertEqual(process.returncode, -signal.SIGKILL)
        # The server rolled the copy back: an empty table, its indexes in place.
        deadline = time.monotonic() + 10
        while copying_in("universe_events") and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(Universe(env=ENV).recorder.max_notification_id(), None)
        self.assertEqual(len(indexes("universe_events")), 2)

        out, _ = upgrade()

        self.assertIn("Verified: 8000 events", out)
        after = recorded(Universe(env=ENV))
        self.assertEqual(after.notifications, expected.notifications)
        self.assertEqual(after.snapshots, expected.snapshots)
