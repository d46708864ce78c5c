"""MariaDB: eventsourcing_upgrade (from 0.x) refuses, before any SQL, to run."""

from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import CommandError

from tests.base import DjangoDBTestCase


class TestUpgradeRefused(DjangoDBTestCase):
    def test_the_upgrade_command_says_where_it_runs(self) -> None:
        with self.assertRaisesRegex(
            CommandError,
            "mysql: upgrading from eventsourcing-django 0.x is "
            "supported on postgresql and sqlite only",
        ):
            call_command("eventsourcing_upgrade", "--database", "default")
