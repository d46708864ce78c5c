"""Shared test fixtures: a real database per alias, cleaned after each test."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar
from uuid import uuid4

from django.db import connections
from django.db.migrations.recorder import MigrationRecorder
from django.test import TransactionTestCase, override_settings

SUFFIXES = ("_events", "_snapshots", "_tracking", "_dcb", "_dcb_tags")

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


def can_upgrade_from_0x(alias: str = "default") -> bool:
    """Whether eventsourcing_upgrade runs on ``alias`` (not on MariaDB, where it
    refuses: tests/mariadb/test_upgrade_refused.py)."""
    return connections[alias].vendor in ("postgresql", "sqlite")


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


class TemporaryMigrationsTestCase(DjangoDBTestCase):
    """Gives the app ``routedapp`` an empty migrations package for each test.

    The package is made in a temporary directory, so migrations written by a
    test (by hand or by a command) are gone after it, and so are the records
    of their having been applied.
    """

    app_label = "routedapp"

    def setUp(self) -> None:
        super().setUp()
        directory = Path(tempfile.mkdtemp(prefix="esdj_migrations_"))
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        self.package = f"esdj_tmp_{uuid4().hex}"
        (directory / self.package).mkdir()
        (directory / self.package / "__init__.py").touch()
        self.migrations_dir = directory / self.package / "migrations"
        sys.path.insert(0, str(directory))
        self.addCleanup(sys.path.remove, str(directory))
        settings = override_settings(
            MIGRATION_MODULES={self.app_label: f"{self.package}.migrations"}
        )
        settings.enable()
        self.addCleanup(settings.disable)
        self.addCleanup(self._forget_migrations)

    def _forget_migrations(self) -> None:
        for alias in self.databases:
            recorder = MigrationRecorder(connections[alias])
            recorder.migration_qs.filter(app=self.app_label).delete()
        for name in [m for m in sys.modules if m.startswith(self.package)]:
            del sys.modules[name]

    def write_migration(self, name: str, text: str) -> Path:
        """Write migration ``name`` of ``routedapp`` by hand."""
        self.migrations_dir.mkdir(exist_ok=True)
        (self.migrations_dir / "__init__.py").touch()
        path = self.migrations_dir / f"{name}.py"
        path.write_text(text)
        importlib.invalidate_caches()
        return path

    def migration_files(self) -> list[str]:
        if not self.migrations_dir.exists():
            return []
        return sorted(
            p.stem for p in self.migrations_dir.glob("*.py") if p.stem != "__init__"
        )


def factory_env(name: str, **extra: Any) -> dict[str, str]:
    env = {"PERSISTENCE_MODULE": "eventsourcing_django"}
    env.update({k: str(v) for k, v in extra.items()})
    return env
