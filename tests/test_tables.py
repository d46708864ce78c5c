"""Application names are checked before any SQL, and give the documented tables."""

from __future__ import annotations

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from eventsourcing.application import Application

from eventsourcing_django.tables import (
    ApplicationTables,
    InvalidApplicationNameError,
    InvalidSchemaNameError,
    check_schema_name,
)
from tests.base import DjangoDBTestCase

ENV = {"PERSISTENCE_MODULE": "eventsourcing_django"}


def test_table_names_follow_eventsourcing_postgres() -> None:
    tables = ApplicationTables.for_application("Universe")
    assert (tables.events, tables.snapshots, tables.tracking) == (
        "universe_events",
        "universe_snapshots",
        "universe_tracking",
    )


@pytest.mark.parametrize(
    "name",
    ['Uni"verse', "Uni;verse", "Uni verse", "Univers\u00e9", "x-y", "a.b", ""],
)
def test_unsafe_characters_are_refused_naming_the_rule(name: str) -> None:
    with pytest.raises(InvalidApplicationNameError) as info:
        ApplicationTables.for_application(name)
    assert repr(name) in str(info.value) or name == ""


def test_longest_name_that_fits_63_bytes_is_accepted_and_one_more_is_not() -> None:
    fits = "A" * (63 - len("_snapshots"))
    assert len(ApplicationTables.for_application(fits).snapshots) == 63
    with pytest.raises(InvalidApplicationNameError, match="63 bytes"):
        ApplicationTables.for_application(fits + "A")


@pytest.mark.parametrize("schema", ['te"nant', "a;drop", "x" * 64, ""])
def test_unsafe_schema_names_are_refused(schema: str) -> None:
    with pytest.raises(InvalidSchemaNameError):
        check_schema_name(schema)


@pytest.mark.parametrize("schema", ["pg_catalog", "pg_es", "pg_"])
def test_schema_names_postgresql_reserves_are_refused(schema: str) -> None:
    with pytest.raises(InvalidSchemaNameError, match="PostgreSQL reserves"):
        check_schema_name(schema)


@pytest.mark.parametrize("schema", ["events", "PG_es", "my_pg_events"])
def test_schema_names_like_reserved_ones_are_accepted(schema: str) -> None:
    # Quoted identifiers keep their case: PostgreSQL reserves "pg_" only.
    assert check_schema_name(schema) == schema


class TestBadNamesTouchNoDatabase(DjangoDBTestCase):
    def test_application_with_hostile_name_fails_before_any_sql(self) -> None:
        class Hostile(Application):
            name = 'Uni"; DROP TABLE auth_user; --'

        connection = connections["default"]
        with (
            CaptureQueriesContext(connection) as queries,
            self.assertRaises(InvalidApplicationNameError) as info,
        ):
            Hostile(env=ENV)
        self.assertIn("DROP TABLE", str(info.exception))
        self.assertIn("only letters", str(info.exception))
        self.assertEqual(len(queries), 0)

    def test_application_name_too_long_fails_before_any_sql(self) -> None:
        class Long(Application):
            name = "L" * 60

        with (
            CaptureQueriesContext(connections["default"]) as queries,
            self.assertRaises(InvalidApplicationNameError) as info,
        ):
            Long(env=ENV)
        self.assertIn("L" * 60, str(info.exception))
        self.assertEqual(len(queries), 0)
        with connections["default"].cursor() as cursor:
            tables = connections["default"].introspection.table_names(cursor)
        self.assertFalse([t for t in tables if t.startswith("llll")])
