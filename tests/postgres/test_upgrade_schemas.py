"""Upgrading from 0.x into applications pinned to PostgreSQL schemas."""

from __future__ import annotations

from typing import ClassVar

from django.test import override_settings

from tests.base import table_names
from tests.test_upgrade import ROUTED, UpgradeTestCase, run_on_0x, upgrade


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
