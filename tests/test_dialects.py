"""The dialects: one per vendor, each saying what it can do."""

from __future__ import annotations

from django.db import connections
from django.test import SimpleTestCase
from eventsourcing.persistence import NotSupportedError

from eventsourcing_django.dialects import DIALECTS, Dialect, dialect_for


class TestDialects(SimpleTestCase):
    def test_each_vendor_has_one_and_says_whether_it_has_schemas(self) -> None:
        self.assertEqual(sorted(DIALECTS), ["mysql", "postgresql", "sqlite"])
        schemas = {vendor: d.supports_schemas for vendor, d in DIALECTS.items()}
        self.assertEqual(schemas, {"mysql": False, "postgresql": True, "sqlite": False})

    def test_a_dialect_must_say_how_to_make_and_find_its_tables(self) -> None:
        class Incomplete(Dialect):
            vendor = "incomplete"
            display_name = "Incomplete"

        with self.assertRaisesRegex(TypeError, "abstract"):
            Incomplete(connections["default"], schema=None)  # type: ignore[abstract]

    def test_a_schema_is_refused_where_there_are_none(self) -> None:
        connection = connections["default"]
        dialect = DIALECTS[connection.vendor]
        if dialect.supports_schemas:
            self.assertEqual(dialect_for(connection, schema="events").schema, "events")
            return
        with self.assertRaisesRegex(NotSupportedError, "has no schemas"):
            dialect_for(connection, schema="events")

    def test_the_reads_are_composed_once_per_shape(self) -> None:
        dialect = dialect_for(connections["default"], schema=None)
        statement = dialect.select_notifications_statement(
            "app_events", start=">", stop=True, topics=2
        )
        self.assertIn("notification_id > %s AND notification_id <= %s", statement)
        self.assertIn("topic IN (%s, %s)", statement)
        self.assertTrue(statement.endswith("ORDER BY notification_id LIMIT %s"))
