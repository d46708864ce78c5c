"""MariaDB: a server that cannot keep our tables (MySQL, MariaDB before 10.6)
is refused by name, by the database check E017 and before any DDL runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connections
from eventsourcing.persistence import NotSupportedError

from eventsourcing_django.checks import check_database_servers
from eventsourcing_django.recorders import DjangoApplicationRecorder
from tests.base import DjangoDBTestCase, table_names

#: Django's answers about the server, cached on the connection wrapper.
SERVER_FACTS = ("mysql_is_mariadb", "mysql_version")


@contextmanager
def server_says(**facts: Any) -> Iterator[None]:
    """Make Django's wrapper of ``default`` believe another server answered."""
    wrapper = connections["default"]
    wrapper.mysql_version  # noqa: B018 (asks the real server first)
    saved = {name: wrapper.__dict__[name] for name in SERVER_FACTS}
    wrapper.__dict__.update(facts)
    try:
        yield
    finally:
        wrapper.__dict__.update(saved)


class TestServersRefused(DjangoDBTestCase):
    def test_this_mariadb_passes(self) -> None:
        self.assertEqual(check_database_servers(databases=["default"]), [])
        call_command("check", "--database", "default", verbosity=0)

    def test_mysql_is_refused_before_any_table_is_made(self) -> None:
        recorder = DjangoApplicationRecorder("MySQLApp")
        with server_says(mysql_is_mariadb=False, mysql_version=(8, 0, 36)):
            with self.assertRaisesRegex(NotSupportedError, "is MySQL 8.0.36"):
                recorder.create_table()
            (error,) = check_database_servers(databases=["default"])
            with self.assertRaisesRegex(SystemCheckError, "E017"):
                call_command("check", "--database", "default", verbosity=0)
        self.assertEqual(error.id, "eventsourcing_django.E017")
        self.assertIn("MariaDB 10.6 and later", error.msg)
        self.assertNotIn("mysqlapp_events", table_names("default"))

    def test_an_old_mariadb_is_refused(self) -> None:
        recorder = DjangoApplicationRecorder("OldApp")
        with server_says(mysql_is_mariadb=True, mysql_version=(10, 5, 27)):
            with self.assertRaisesRegex(NotSupportedError, r"10\.5\.27.*10\.6"):
                recorder.create_table()
            (error,) = check_database_servers(databases=["default"])
        self.assertIn("MariaDB 10.5.27", error.msg)
        self.assertNotIn("oldapp_events", table_names("default"))

    def test_only_when_asked_for_databases(self) -> None:
        with server_says(mysql_is_mariadb=False, mysql_version=(8, 0, 36)):
            self.assertEqual(check_database_servers(databases=None), [])
            call_command("check", verbosity=0)  # no --database: not asked
