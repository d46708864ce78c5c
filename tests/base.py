"""Shared test fixtures: a real database per alias, cleaned after each test."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from django.db import connections
from django.test import TransactionTestCase

SUFFIXES = ("_events", "_snapshots", "_tracking")

#: Why some test classes are collected on PostgreSQL only.
POSTGRES_ONLY = "SQLite has no schemas"


def drop_application_tables(alias: str) -> None:
    """Drop every per-application table on ``alias`` (the test database)."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        names = connection.introspection.table_names(cursor)
        for name in names:
            if name.endswith(SUFFIXES) and not name.startswith(("django_", "auth_")):
                cursor.execute(
                    f"DROP TABLE IF EXISTS {connection.ops.quote_name(name)}"
                )


def drop_schemas(alias: str, schemas: tuple[str, ...]) -> None:
    """Drop PostgreSQL ``schemas`` on ``alias``, with the tables in them."""
    connection = connections[alias]
    if connection.vendor != "postgresql" or not schemas:
        return
    with connection.cursor() as cursor:
        for schema in schemas:
            cursor.execute(
                f"DROP SCHEMA IF EXISTS {connection.ops.quote_name(schema)} CASCADE"
            )


def is_postgres(alias: str = "default") -> bool:
    return connections[alias].vendor == "postgresql"


def table_names(alias: str, schema: str | None = None) -> set[str]:
    """The per-application tables on ``alias``, in ``schema`` or the search path."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        if schema is None:
            names = connection.introspection.table_names(cursor)
        else:
            cursor.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = %s",
                [schema],
            )
            names = [row[0] for row in cursor.fetchall()]
    return {n for n in names if n.endswith(SUFFIXES)}


def count_rows(alias: str, table: str) -> int:
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


class DjangoDBTestCase(TransactionTestCase):
    """Commits for real (recorders write from many threads), then cleans up."""

    databases: ClassVar[set[str]] = {"default"}  # type: ignore[misc]
    #: Environment variables set for the duration of each test.
    environ: ClassVar[dict[str, str]] = {}
    #: PostgreSQL schemas the tests create, dropped after each test.
    schemas: ClassVar[tuple[str, ...]] = ()
    _saved_environ: ClassVar[dict[str, str | None]]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls._saved_environ = {k: os.environ.get(k) for k in cls.environ}
        os.environ.update(cls.environ)

    @classmethod
    def tearDownClass(cls) -> None:
        for key, value in cls._saved_environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        super().tearDownClass()

    def _post_teardown(self) -> None:
        try:
            for alias in self.databases:
                drop_application_tables(alias)
                drop_schemas(alias, self.schemas)
        finally:
            super()._post_teardown()


def factory_env(name: str, **extra: Any) -> dict[str, str]:
    env = {"PERSISTENCE_MODULE": "eventsourcing_django"}
    env.update({k: str(v) for k, v in extra.items()})
    return env
