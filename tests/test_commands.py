"""Stories of the management commands: writing a migration, managing tables."""

from __future__ import annotations

import importlib
from io import StringIO
from typing import Any, ClassVar
from unittest import mock

from django.core.management import CommandError, call_command
from django.db import connections
from django.test import override_settings

from eventsourcing_django.recorders import DjangoTrackingRecorder
from tests.base import (
    DjangoDBTestCase,
    TemporaryMigrationsTestCase,
    is_postgres,
    table_names,
)
from tests.routedapp.applications import Universe

ROUTER = "eventsourcing_django.routers.EventSourcingRouter"
TOPIC = "tests.routedapp.applications:{}"


def run(*args: Any, **options: Any) -> tuple[str, str]:
    """Run a command; return what it wrote to stdout and stderr."""
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


@override_settings(
    DATABASE_ROUTERS=[ROUTER],
    EVENTSOURCING_DATABASES={
        "Universe": "other",
        "Galaxy": "other",
        "Nebula": "other",
        "Observatory": "other",
    },
)
class TestMakingAMigration(TemporaryMigrationsTestCase):
    databases: ClassVar[set[str]] = {"default", "other"}

    def make(self, *classes: str, **options: Any) -> str:
        topics = [TOPIC.format(c) for c in classes]
        return run("eventsourcing_makemigration", "routedapp", *topics, **options)[0]

    def operations(self, migration_name: str) -> dict[str, dict[str, Any]]:
        module = importlib.import_module(f"{self.package}.migrations.{migration_name}")
        return {
            args[0]: kwargs
            for _, args, kwargs in (
                op.deconstruct() for op in module.Migration.operations
            )
        }

    def test_each_class_gets_the_tables_it_needs(self) -> None:
        out = self.make("Universe", "Galaxy", "Nebula", "Observatory")

        self.assertEqual(self.migration_files(), ["0001_initial"])
        self.assertIn("+ Create tables of eventsourcing application Galaxy", out)
        self.assertEqual(
            self.operations("0001_initial"),
            {
                # Plain: events only.
                "Universe": {"snapshots": False, "tracking": False},
                # snapshotting_intervals: snapshots too.
                "Galaxy": {"tracking": False},
                # IS_SNAPSHOTTING_ENABLED and ORIGINATOR_ID_TYPE in its env.
                "Nebula": {"tracking": False, "originator_id_type": "text"},
                # A process application follows others: tracking.
                "Observatory": {"snapshots": False},
            },
        )

    def test_the_migration_runs_on_a_fresh_database_and_leaves_no_changes(
        self,
    ) -> None:
        self.make("Universe", "Observatory")
        importlib.invalidate_caches()
        call_command("migrate", "routedapp", database="other", verbosity=0)
        call_command("migrate", "routedapp", database="default", verbosity=0)

        self.assertEqual(
            table_names("other"),
            {"universe_events", "observatory_events", "observatory_tracking"},
        )
        self.assertEqual(table_names("default"), set())
        out, _ = run("makemigrations", "routedapp", "--check", "--dry-run")
        self.assertIn("No changes detected", out)
        star = Universe(env={"CREATE_TABLE": "n"}).create_star("Sirius")
        self.assertEqual(Universe().star_name(star), "Sirius")

    def test_a_later_migration_depends_on_the_latest_and_adds_only_whats_new(
        self,
    ) -> None:
        self.write_migration(
            "0001_initial",
            "from django.db import migrations\n\n\n"
            "class Migration(migrations.Migration):\n"
            "    initial = True\n",
        )
        self.make("Universe")
        self.assertEqual(
            self.migration_files(), ["0001_initial", "0002_create_universe_tables"]
        )
        module = importlib.import_module(
            f"{self.package}.migrations.0002_create_universe_tables"
        )
        self.assertEqual(module.Migration.dependencies, [("routedapp", "0001_initial")])

        # Again: the migrations already create those tables.
        out = self.make("Universe")
        self.assertIn("No changes detected", out)
        self.assertEqual(len(self.migration_files()), 2)

        # Asked for snapshots too: a migration for the snapshots table only.
        self.make("Universe", snapshots=True, name="universe_snapshots")
        self.assertEqual(
            self.operations("0003_universe_snapshots"),
            {"Universe": {"events": False, "tracking": False}},
        )

    def test_projections_by_name_get_their_tracking_or_their_own_tables(
        self,
    ) -> None:
        out, _ = run(
            "eventsourcing_makemigration", "routedapp", "WorldSummary", "Counters"
        )
        self.assertIn(
            "+ Create tables of eventsourcing application WorldSummary (tracking)", out
        )
        self.assertEqual(
            self.operations("0001_initial"),
            {
                # A view: the tracking table only, named after the projection.
                "WorldSummary": {"events": False, "snapshots": False},
                # An event-sourced projection: an application that follows one.
                "Counters": {"snapshots": False},
            },
        )
        importlib.invalidate_caches()
        call_command("migrate", "routedapp", database="default", verbosity=0)
        self.assertEqual(
            table_names("default"),
            {"worldsummary_tracking", "counters_events", "counters_tracking"},
        )
        # The view finds its table where migrate made it.
        view = DjangoTrackingRecorder("WorldSummary")
        self.assertIsNone(view.max_tracking_id("Universe"))

        out, _ = run("eventsourcing_makemigration", "routedapp", "WorldSummary")
        self.assertIn("No changes detected", out)
        self.assertEqual(self.migration_files(), ["0001_initial"])

    def test_dry_run_writes_nothing(self) -> None:
        out = self.make("Universe", dry_run=True, verbosity=3)
        self.assertIn("CreateApplicationTables(", out)
        self.assertEqual(self.migration_files(), [])

    def test_mistakes_are_explained(self) -> None:
        with self.assertRaisesRegex(CommandError, "INSTALLED_APPS"):
            run("eventsourcing_makemigration", "nosuchapp", TOPIC.format("Universe"))
        with self.assertRaisesRegex(CommandError, "module:ClassName"):
            self.make("NoSuchClass")
        with self.assertRaisesRegex(CommandError, "not a subclass of"):
            self.make("Star")
        with self.assertRaisesRegex(
            CommandError,
            r"'Nope' is neither an application topic .* nor a projection name\. "
            r"Unknown projection\(s\): Nope\. EVENTSOURCING_PROJECTIONS declares: "
            "WorldSummary, Counters",
        ):
            run("eventsourcing_makemigration", "routedapp", "Nope")
        with (
            self.settings(MIGRATION_MODULES={"routedapp": None}),
            self.assertRaisesRegex(CommandError, "disabled in MIGRATION_MODULES"),
        ):
            self.make("Universe")
        self.assertEqual(self.migration_files(), [])


@override_settings(
    DATABASE_ROUTERS=[ROUTER], EVENTSOURCING_DATABASES={"Universe": "other"}
)
class TestManagingTablesWithoutMigrations(DjangoDBTestCase):
    databases: ClassVar[set[str]] = {"default", "other"}

    def test_create_list_and_drop_on_the_routed_database(self) -> None:
        out, _ = run("eventsourcing_tables", "create", "Universe")
        self.assertIn("Created 'universe_events' on database 'other'.", out)
        self.assertEqual(
            table_names("other"),
            {"universe_events", "universe_snapshots", "universe_tracking"},
        )
        self.assertEqual(table_names("default"), set())

        out, _ = run("eventsourcing_tables", "create", "Universe")
        self.assertIn("'universe_events' already exists on database 'other'.", out)
        star = Universe(env={"CREATE_TABLE": "n"}).create_star("Vega")
        self.assertEqual(Universe().star_name(star), "Vega")

        out, _ = run("eventsourcing_tables", "list", "Universe", "Galaxy")
        self.assertIn(
            "Universe (database 'other')\n"
            " [X] universe_events\n [X] universe_snapshots\n [X] universe_tracking\n"
            "Galaxy (database 'default')\n"
            " [ ] galaxy_events\n [ ] galaxy_snapshots\n [ ] galaxy_tracking\n",
            out,
        )

        out, _ = run("eventsourcing_tables", "drop", "Universe", interactive=False)
        self.assertIn("Dropped 'universe_events' from database 'other'.", out)
        self.assertEqual(table_names("other"), set())

    def test_database_and_table_options(self) -> None:
        out, err = run(
            "eventsourcing_tables",
            "create",
            "Universe",
            "--database=default",
            "--no-snapshots",
            "--no-tracking",
        )
        self.assertEqual(table_names("default"), {"universe_events"})
        self.assertEqual(table_names("other"), set())
        self.assertIn("routers send application 'Universe' to 'other'", err)

        out, err = run("eventsourcing_tables", "create", "Galaxy", verbosity=0)
        self.assertEqual((out, err), ("", ""))
        self.assertEqual(
            table_names("default"),
            {"universe_events", "galaxy_events", "galaxy_snapshots", "galaxy_tracking"},
        )

    def test_a_declared_application_gets_its_tables_where_its_env_says(
        self,
    ) -> None:
        declared = {
            "Galaxy": {
                "class": TOPIC.format("Galaxy"),
                "env": {"DJANGO_DB_ALIAS": "other", "ORIGINATOR_ID_TYPE": "text"},
            }
        }
        with override_settings(EVENTSOURCING_APPLICATIONS=declared):
            out, err = run("eventsourcing_tables", "create", "Galaxy")
        self.assertIn("Created 'galaxy_events' on database 'other'.", out)
        self.assertEqual(err, "")
        self.assertEqual(table_names("default"), set())
        if is_postgres("other"):
            # SQLite stores either kind of ID as TEXT; PostgreSQL tells them apart.
            with connections["other"].cursor() as cursor:
                cursor.execute(
                    "SELECT data_type FROM information_schema.columns WHERE "
                    "table_name = 'galaxy_events' AND column_name = 'originator_id'"
                )
                self.assertEqual(cursor.fetchone(), ("text",))

    def test_drop_asks_first(self) -> None:
        run("eventsourcing_tables", "create", "Universe")
        with (
            mock.patch("builtins.input", return_value="no") as asked,
            self.assertRaisesRegex(CommandError, "Nothing dropped"),
        ):
            run("eventsourcing_tables", "drop", "Universe", "--no-tracking")
        self.assertIn("universe_events on database 'other'", asked.call_args[0][0])
        self.assertNotIn("universe_tracking", asked.call_args[0][0])
        self.assertEqual(len(table_names("other")), 3)

        with mock.patch("builtins.input", return_value="yes"):
            run("eventsourcing_tables", "drop", "Universe", "--no-tracking")
        self.assertEqual(table_names("other"), {"universe_tracking"})

    def test_mistakes_are_explained_before_anything_is_done(self) -> None:
        with self.assertRaisesRegex(CommandError, "cannot make safe table names"):
            run("eventsourcing_tables", "create", "Universe", "Uni-verse")
        with self.assertRaisesRegex(CommandError, "'elsewhere' .* not in settings"):
            run("eventsourcing_tables", "create", "Universe", "--database=elsewhere")
        with self.assertRaisesRegex(CommandError, "leave no table"):
            run(
                "eventsourcing_tables",
                "list",
                "Universe",
                "--no-events",
                "--no-snapshots",
                "--no-tracking",
            )
        with self.assertRaisesRegex(CommandError, "not a safe SQL identifier"):
            run("eventsourcing_tables", "create", "Universe", "--schema=a;b")
        self.assertEqual(table_names("other"), set())


class TestTablesInASchema(DjangoDBTestCase):
    __test__ = is_postgres()  # Not collected on SQLite: it has no schemas.
    schemas = ("es_operated", "es_setting")

    def test_schema_option_and_setting(self) -> None:
        out, _ = run(
            "eventsourcing_tables", "create", "Universe", "--schema=es_operated"
        )
        self.assertIn(
            "Created 'universe_events' on database 'default', schema 'es_operated'.",
            out,
        )
        self.assertEqual(len(table_names("default", "es_operated")), 3)
        self.assertEqual(table_names("default", "public"), set())

        with self.settings(EVENTSOURCING_SCHEMAS={"Galaxy": "es_setting"}):
            run("eventsourcing_tables", "create", "Galaxy", "--no-snapshots")
            out, _ = run("eventsourcing_tables", "list", "Galaxy")
        self.assertEqual(
            table_names("default", "es_setting"), {"galaxy_events", "galaxy_tracking"}
        )
        self.assertIn("Galaxy (database 'default', schema 'es_setting')", out)


class TestNoSchemaOptionOnSQLite(DjangoDBTestCase):
    __test__ = not is_postgres()  # Collected on SQLite and MariaDB: no schemas.

    def test_schema_option_is_refused(self) -> None:
        with self.assertRaisesRegex(CommandError, "(SQLite|MariaDB) has no schemas"):
            run("eventsourcing_tables", "create", "Universe", "--schema=events")
        self.assertEqual(table_names("default"), set())
