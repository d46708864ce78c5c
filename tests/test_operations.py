"""Stories of creating and dropping applications' tables with migrations."""

from __future__ import annotations

from io import StringIO
from typing import Any, ClassVar

from django.core.management import call_command
from django.db import connections
from django.db.migrations.state import ProjectState
from django.db.migrations.writer import MigrationWriter
from django.test import SimpleTestCase, override_settings

from eventsourcing_django.errors import TableMissingError
from eventsourcing_django.operations import (
    CreateApplicationTables,
    DropApplicationTables,
    UpgradeFromSharedTables,
)
from eventsourcing_django.tables import InvalidApplicationNameError
from tests.base import (
    TemporaryMigrationsTestCase,
    can_upgrade_from_0x,
    count_rows,
    is_postgres,
    table_names,
)
from tests.legacy import drop_shared_tables, shared_tables
from tests.routedapp.applications import Galaxy, Universe
from tests.test_upgrade import ENV as UPGRADED_ENV
from tests.test_upgrade import run_on_0x

ROUTER = "eventsourcing_django.routers.EventSourcingRouter"

HEADER = """\
from django.db import migrations

import eventsourcing_django.operations

"""


def migration_text(*operations: str, dependencies: str = "[]") -> str:
    return (
        HEADER
        + "class Migration(migrations.Migration):\n"
        + f"    dependencies = {dependencies}\n"
        + "    operations = [\n"
        + "".join(
            f"        eventsourcing_django.operations.{op},\n" for op in operations
        )
        + "    ]\n"
    )


def fail(*args: Any) -> None:
    raise RuntimeError("the next operation of the migration failed")


class TestOperationsDescribeThemselves(SimpleTestCase):
    def test_deconstruct_keeps_only_what_differs_from_the_defaults(self) -> None:
        self.assertEqual(
            CreateApplicationTables("Universe").deconstruct(),
            ("CreateApplicationTables", ["Universe"], {}),
        )
        operation = DropApplicationTables(
            "Universe", snapshots=False, schema="events", originator_id_type="text"
        )
        self.assertEqual(
            operation.deconstruct(),
            (
                "DropApplicationTables",
                ["Universe"],
                {"snapshots": False, "schema": "events", "originator_id_type": "text"},
            ),
        )

    def test_migration_writer_serializes_them_to_code_that_rebuilds_them(
        self,
    ) -> None:
        operation = CreateApplicationTables("Universe", tracking=False, schema="ev")
        code, imports = MigrationWriter.serialize(operation)
        self.assertEqual(imports, {"import eventsourcing_django.operations"})
        namespace: dict[str, Any] = {}
        exec("\n".join([*imports, f"rebuilt = {code}"]), namespace)
        self.assertEqual(namespace["rebuilt"].deconstruct(), operation.deconstruct())

    def test_describe_and_name_fragment_say_which_application(self) -> None:
        create = CreateApplicationTables("Universe", tracking=False)
        self.assertEqual(
            create.formatted_description(),
            "+ Create tables of eventsourcing application Universe (events, snapshots)",
        )
        self.assertEqual(create.migration_name_fragment, "create_universe_tables")
        drop = DropApplicationTables("Universe", schema="ev")
        self.assertEqual(
            drop.formatted_description(),
            "- Drop tables of eventsourcing application Universe "
            "(events, snapshots, tracking in schema ev)",
        )
        self.assertEqual(drop.migration_name_fragment, "drop_universe_tables")

    def test_they_keep_no_model_state(self) -> None:
        state = ProjectState()
        CreateApplicationTables("Universe").state_forwards("routedapp", state)
        DropApplicationTables("Universe").state_forwards("routedapp", state)
        self.assertEqual(state.models, {})

    def test_bad_arguments_are_refused_when_the_migration_is_loaded(self) -> None:
        with self.assertRaisesRegex(InvalidApplicationNameError, "safe table names"):
            CreateApplicationTables("Uni-verse")
        with self.assertRaisesRegex(ValueError, "names no table"):
            CreateApplicationTables(
                "Universe", events=False, snapshots=False, tracking=False
            )
        with self.assertRaisesRegex(ValueError, "not a safe SQL identifier"):
            CreateApplicationTables("Universe", schema="bad schema")


@override_settings(
    # Our router first: django-tenants' router (imitated) after it would keep
    # every table off 'other'.
    DATABASE_ROUTERS=[ROUTER, "tests.routers.TenantLikeRouter"],
    EVENTSOURCING_DATABASES={"Universe": "other", "Galaxy": "default"},
)
class TestMigratingApplicationTables(TemporaryMigrationsTestCase):
    databases: ClassVar[set[str]] = {"default", "other"}

    def setUp(self) -> None:
        super().setUp()
        self.write_migration(
            "0001_initial",
            migration_text(
                'CreateApplicationTables("Universe", snapshots=False, tracking=False)',
                'CreateApplicationTables("Galaxy", tracking=False)',
            ),
        )

    def migrate(self, *args: str, database: str) -> str:
        out = StringIO()
        call_command("migrate", "routedapp", *args, database=database, stdout=out)
        return out.getvalue()

    def test_migrate_creates_on_each_alias_the_tables_the_router_allows(
        self,
    ) -> None:
        self.migrate(database="default")
        self.migrate(database="other")
        self.assertEqual(table_names("other"), {"universe_events"})
        self.assertEqual(table_names("default"), {"galaxy_events", "galaxy_snapshots"})
        # The applications find their tables where the migration made them.
        universe = Universe(env={"CREATE_TABLE": "n"})
        galaxy = Galaxy(env={"CREATE_TABLE": "n"})
        star = universe.create_star("Sirius")
        galaxy.create_star("Andromeda I")
        self.assertEqual(universe.star_name(star), "Sirius")
        self.assertEqual(count_rows("other", "universe_events"), 1)
        self.assertEqual(count_rows("default", "galaxy_events"), 1)

    def test_migrate_plan_shows_the_operations(self) -> None:
        out = self.migrate("--plan", database="other")
        self.assertIn(
            "Create tables of eventsourcing application Universe (events)", out
        )
        self.assertEqual(table_names("other"), set())

    def test_sqlmigrate_shows_the_statements_without_running_them(self) -> None:
        out = StringIO()
        call_command("sqlmigrate", "routedapp", "0001", database="other", stdout=out)
        table = connections["other"].ops.quote_name("universe_events")
        self.assertIn(f"CREATE TABLE IF NOT EXISTS {table}", out.getvalue())
        # Galaxy's tables do not belong on 'other'.
        self.assertNotIn("galaxy", out.getvalue())
        self.assertEqual(table_names("other"), set())

    def test_a_second_migrate_is_a_no_op_and_the_operation_is_idempotent(
        self,
    ) -> None:
        self.migrate(database="other")
        Universe().create_star("Vega")
        self.assertIn("No migrations to apply", self.migrate(database="other"))
        # Applied again over existing tables (as after --fake zero), it leaves
        # them and their rows alone.
        self.migrate("zero", "--fake", database="other")
        self.migrate(database="other")
        self.assertEqual(count_rows("other", "universe_events"), 1)

    def test_unapplying_the_migration_drops_the_tables(self) -> None:
        self.migrate(database="other")
        self.migrate(database="default")
        self.migrate("zero", database="other")
        self.assertEqual(table_names("other"), set())
        self.assertEqual(table_names("default"), {"galaxy_events", "galaxy_snapshots"})
        self.migrate("zero", database="default")
        self.assertEqual(table_names("default"), set())

    def test_without_tables_the_first_write_says_how_to_make_them(self) -> None:
        universe = Universe(env={"CREATE_TABLE": "n"})
        with self.assertRaises(TableMissingError) as raised:
            universe.create_star("Rigel")
        message = str(raised.exception)
        self.assertIn("'universe_events' of application 'Universe'", message)
        self.assertIn("CreateApplicationTables('Universe')", message)
        self.assertIn("eventsourcing_tables create Universe --database other", message)

        self.migrate(database="other")
        star = universe.create_star("Rigel")
        self.assertEqual(universe.star_name(star), "Rigel")

    def test_a_failed_migration_leaves_no_tables(self) -> None:
        # The operation runs in the migration's transaction (on SQLite too): when
        # a later operation fails, its tables are rolled back with the rest.
        self.write_migration(
            "0002_then_fail",
            migration_text(
                'CreateApplicationTables("Universe", events=False)',
                dependencies='[("routedapp", "0001_initial")]',
            )
            .replace(
                "    ]\n",
                # The same hint routes a data migration with the application.
                "        migrations.RunPython(tests.test_operations.fail, "
                "hints={'eventsourcing_application': 'Universe'}),\n    ]\n",
            )
            .replace(HEADER, HEADER + "import tests.test_operations\n\n"),
        )
        self.migrate("0001", database="other")
        with self.assertRaisesRegex(RuntimeError, "next operation"):
            self.migrate(database="other")
        if connections["other"].features.can_rollback_ddl:
            self.assertEqual(table_names("other"), {"universe_events"})
        else:
            # MariaDB commits each DDL statement: the tables stay, empty, and
            # the migration is not recorded, so the next migrate runs it again
            # (the operation is idempotent).
            self.assertEqual(
                table_names("other"),
                {"universe_events", "universe_snapshots", "universe_tracking"},
            )

    def test_a_drop_migration_drops_and_its_reverse_creates_empty_tables(
        self,
    ) -> None:
        self.write_migration(
            "0002_drop_universe_tables",
            migration_text(
                'DropApplicationTables("Universe", snapshots=False, tracking=False)',
                dependencies='[("routedapp", "0001_initial")]',
            ),
        )
        self.migrate("0001", database="other")
        Universe().create_star("Deneb")
        self.migrate(database="other")
        self.assertEqual(table_names("other"), set())
        self.migrate("0001", database="other")
        self.assertEqual(table_names("other"), {"universe_events"})
        self.assertEqual(count_rows("other", "universe_events"), 0)


@override_settings(
    DATABASE_ROUTERS=[ROUTER],
    EVENTSOURCING_DATABASES={"Universe": "other"},
    EVENTSOURCING_SCHEMAS={"Universe": "es_migrated"},
)
class TestMigratingIntoSchemas(TemporaryMigrationsTestCase):
    __test__ = is_postgres()  # Not collected on SQLite: it has no schemas.
    databases: ClassVar[set[str]] = {"default", "other"}
    schemas = ("es_migrated", "es_explicit")

    def test_a_pinned_application_gets_its_schema_and_tables_there(self) -> None:
        self.write_migration(
            "0001_initial",
            migration_text(
                'CreateApplicationTables("Universe")',
                'CreateApplicationTables("Galaxy", schema="es_explicit")',
            ),
        )
        call_command("migrate", "routedapp", database="other", verbosity=0)
        self.assertEqual(
            table_names("other", "es_migrated"),
            {"universe_events", "universe_snapshots", "universe_tracking"},
        )
        self.assertEqual(
            table_names("other", "es_explicit"),
            {"galaxy_events", "galaxy_snapshots", "galaxy_tracking"},
        )
        self.assertEqual(table_names("other", "public"), set())
        star = Universe(env={"CREATE_TABLE": "n"}).create_star("Capella")
        self.assertEqual(Universe().star_name(star), "Capella")

        call_command("migrate", "routedapp", "zero", database="other", verbosity=0)
        self.assertEqual(table_names("other", "es_migrated"), set())


@override_settings(EVENTSOURCING_SCHEMAS={"Universe": 'x"; DROP TABLE y; --'})
class TestSchemaFromSettingsIsChecked(TemporaryMigrationsTestCase):
    def test_an_unsafe_schema_in_the_setting_is_refused_before_any_sql(self) -> None:
        self.write_migration(
            "0001_initial", migration_text('CreateApplicationTables("Universe")')
        )
        with self.assertRaisesRegex(ValueError, "not a safe SQL identifier"):
            call_command("migrate", "routedapp", verbosity=0)
        self.assertEqual(table_names("default"), set())


class TestUpgradingWithAMigration(TemporaryMigrationsTestCase):
    __test__ = can_upgrade_from_0x()  # Not collected on MariaDB.

    """UpgradeFromSharedTables: the upgrade for teams who ship changes as
    migrations (the stories of the upgrade itself are in test_upgrade.py)."""

    databases: ClassVar[set[str]] = {"default", "other"}  # type: ignore[misc]

    def _post_teardown(self) -> None:
        try:
            for alias in self.databases:
                drop_shared_tables(alias)
        finally:
            super()._post_teardown()

    def test_it_describes_and_deconstructs_itself(self) -> None:
        operation = UpgradeFromSharedTables(["Universe"], drop_legacy=True)
        self.assertEqual(
            operation.deconstruct(),
            (
                "UpgradeFromSharedTables",
                [],
                {"application_names": ["Universe"], "drop_legacy": True},
            ),
        )
        self.assertEqual(UpgradeFromSharedTables().deconstruct()[2], {})
        self.assertEqual(
            UpgradeFromSharedTables(
                batch_size=10, commit_each_batch=True
            ).deconstruct()[2],
            {"batch_size": 10, "commit_each_batch": True},
        )
        self.assertEqual(
            operation.describe(),
            "Copy Universe from the shared tables of eventsourcing-django 0.x, "
            "then drop the shared tables",
        )
        self.assertEqual(
            operation.migration_name_fragment, "upgrade_from_shared_tables"
        )
        code, _ = MigrationWriter.serialize(operation)
        self.assertIn("UpgradeFromSharedTables(", code)

    def test_migrate_copies_where_the_shared_tables_are_and_is_a_no_op_elsewhere(
        self,
    ) -> None:
        before = run_on_0x(worlds=2)
        self.write_migration(
            "0001_upgrade",
            migration_text("UpgradeFromSharedTables()") + "    atomic = False\n",
        )
        call_command("migrate", "routedapp", database="other", verbosity=0)
        self.assertEqual(table_names("other"), set())

        call_command("migrate", "routedapp", verbosity=0)

        universe = Universe(env=UPGRADED_ENV)
        self.assertEqual(
            list(universe.recorder.select_notifications(1, 1000)),
            before.universe.notifications,
        )
        # Unapplied, it leaves the copies and the shared tables alone.
        call_command("migrate", "routedapp", "zero", verbosity=0)
        self.assertEqual(len(shared_tables()), 3)
        self.assertEqual(
            universe.recorder.max_notification_id(),
            before.universe.notifications[-1].id,
        )

    def test_drop_legacy_in_a_migration_drops_after_verifying(self) -> None:
        run_on_0x(worlds=1)
        self.write_migration(
            "0001_upgrade",
            migration_text("UpgradeFromSharedTables(drop_legacy=True)"),
        )
        call_command("migrate", "routedapp", verbosity=0)
        self.assertEqual(shared_tables(), set())
        self.assertIn("worldcounter_tracking", table_names("default"))
