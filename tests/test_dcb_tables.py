"""A DCB application's tables: the migration operations, ``eventsourcing_tables
--dcb``, ``eventsourcing_makemigration`` for a DCBApplication, the message when
they are missing, and reads by tag that answer from the tags index."""

from __future__ import annotations

import importlib
from io import StringIO
from typing import Any, ClassVar

from django.core.management import CommandError, call_command
from django.db import connections
from django.test import SimpleTestCase, override_settings
from eventsourcing.dcb.api import DCBEvent, DCBQuery, DCBQueryItem
from eventsourcing.utils import Environment

from eventsourcing_django.dcb import DjangoDCBRecorder
from eventsourcing_django.errors import TableMissingError
from eventsourcing_django.factory import Factory
from eventsourcing_django.operations import CreateDCBTables, DropDCBTables
from eventsourcing_django.tables import InvalidApplicationNameError
from tests.base import (
    DjangoDBTestCase,
    TemporaryMigrationsTestCase,
    factory_env,
    table_names,
)
from tests.testapp.courses import Courses

ROUTER = "eventsourcing_django.routers.EventSourcingRouter"
COURSES = {"courses_dcb", "courses_dcb_tags"}


def run(*args: Any, **options: Any) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


class TestDCBOperationsDescribeThemselves(SimpleTestCase):
    def test_describe_deconstruct_and_name(self) -> None:
        op = CreateDCBTables("Courses", schema="events")
        self.assertEqual(
            op.describe(),
            "Create tables of DCB application Courses (DCB events and tags in "
            "schema events)",
        )
        self.assertEqual(
            op.deconstruct(), ("CreateDCBTables", ["Courses"], {"schema": "events"})
        )
        self.assertEqual(op.migration_name_fragment, "create_courses_dcb_tables")
        self.assertEqual(
            DropDCBTables("Courses").migration_name_fragment, "drop_courses_dcb_tables"
        )
        self.assertEqual(op.table_names(), ["courses_dcb", "courses_dcb_tags"])

    def test_bad_names_are_refused_when_the_migration_loads(self) -> None:
        with self.assertRaises(InvalidApplicationNameError):
            CreateDCBTables("no-dashes")
        with self.assertRaises(InvalidApplicationNameError):
            CreateDCBTables("x" * 54)  # "_dcb_tags" within 63 bytes, as "_snapshots"
        CreateDCBTables("x" * 53)


@override_settings(
    DATABASE_ROUTERS=[ROUTER], EVENTSOURCING_DATABASES={"Courses": "other"}
)
class TestDCBMigrations(TemporaryMigrationsTestCase):
    databases: ClassVar[set[str]] = {"default", "other"}

    def test_makemigration_writes_the_dcb_tables_and_migrate_runs_it(self) -> None:
        out, _ = run(
            "eventsourcing_makemigration",
            "routedapp",
            "tests.testapp.courses:Courses",
        )
        self.assertIn("+ Create tables of DCB application Courses", out)
        module = importlib.import_module(f"{self.package}.migrations.0001_initial")
        self.assertEqual(
            [op.deconstruct() for op in module.Migration.operations],
            [("CreateDCBTables", ["Courses"], {})],
        )
        # Again: nothing new to write.
        out, _ = run(
            "eventsourcing_makemigration", "routedapp", "tests.testapp.courses:Courses"
        )
        self.assertIn("No changes detected", out)

        importlib.invalidate_caches()
        for alias in ("default", "other"):
            call_command("migrate", "routedapp", database=alias, verbosity=0)
        self.assertEqual(table_names("other"), COURSES)
        self.assertEqual(table_names("default"), set())
        app = Courses(env={"CREATE_TABLE": "n"})
        student = app.register_student("Ada", max_courses=1)
        self.assertEqual(app.repository.get(student).name, "Ada")  # type: ignore[attr-defined]

        # Backwards: dropped.
        call_command("migrate", "routedapp", "zero", database="other", verbosity=0)
        self.assertEqual(table_names("other"), set())

    def test_drop_operation_in_a_migration(self) -> None:
        head = (
            "from django.db import migrations\n"
            "import eventsourcing_django.operations\n\n"
        )
        self.write_migration(
            "0001_initial",
            head + "class Migration(migrations.Migration):\n"
            "    operations = [eventsourcing_django.operations.CreateDCBTables("
            "'Courses')]\n",
        )
        self.write_migration(
            "0002_drop",
            head + "class Migration(migrations.Migration):\n"
            "    dependencies = [('routedapp', '0001_initial')]\n"
            "    operations = [eventsourcing_django.operations.DropDCBTables("
            "'Courses')]\n",
        )
        call_command("migrate", "routedapp", "0001", database="other", verbosity=0)
        self.assertEqual(table_names("other"), COURSES)
        call_command("migrate", "routedapp", database="other", verbosity=0)
        self.assertEqual(table_names("other"), set())


@override_settings(
    DATABASE_ROUTERS=[ROUTER], EVENTSOURCING_DATABASES={"Courses": "other"}
)
class TestDCBTablesCommand(DjangoDBTestCase):
    databases: ClassVar[set[str]] = {"default", "other"}

    def test_create_list_and_drop(self) -> None:
        out, _ = run("eventsourcing_tables", "create", "--dcb", "Courses")
        self.assertIn("Created 'courses_dcb' on database 'other'.", out)
        self.assertEqual(table_names("other"), COURSES)
        out, _ = run("eventsourcing_tables", "list", "--dcb", "Courses")
        self.assertIn(" [X] courses_dcb\n [X] courses_dcb_tags\n", out)
        app = Courses(env={"CREATE_TABLE": "n"})
        app.register_course("Maths", places=3)
        out, _ = run(
            "eventsourcing_tables", "drop", "--dcb", "Courses", interactive=False
        )
        self.assertIn("Dropped 'courses_dcb_tags' from database 'other'.", out)
        self.assertEqual(table_names("other"), set())
        with self.assertRaisesRegex(CommandError, "--dcb takes"):
            run("eventsourcing_tables", "create", "--dcb", "--no-tracking", "Courses")

    def test_missing_tables_are_named_with_the_ways_to_create_them(self) -> None:
        app = Courses(env={"CREATE_TABLE": "n"})
        with self.assertRaises(TableMissingError) as caught:
            app.register_course("Maths", places=3)
        message = str(caught.exception)
        self.assertIn(
            "of DCB application 'Courses' not found in database 'other'", message
        )
        self.assertIn("CreateDCBTables('Courses')", message)
        self.assertIn(
            "eventsourcing_tables create --dcb Courses --database other", message
        )


class TestReadsByTagUseTheIndex(DjangoDBTestCase):
    """With enough rows that a scan would cost more, the database's own plan
    for a read by one tag and by two tags starts from the tags index."""

    def test_plans(self) -> None:
        recorder = Factory(Environment("Plans", factory_env("Plans"))).dcb_recorder()
        assert isinstance(recorder, DjangoDCBRecorder)
        batch = 1000
        for start in range(0, 20_000, batch):
            recorder.append(
                [
                    DCBEvent("E", b"x" * 50, [f"c{i % 100}", f"s{i}"])
                    for i in range(start, start + batch)
                ]
            )
        connection = connections[recorder.using]
        vendor = connection.vendor
        with connection.cursor() as cursor:
            if vendor == "mysql":
                cursor.execute("ANALYZE TABLE plans_dcb, plans_dcb_tags")
                cursor.fetchall()
            else:
                cursor.execute("ANALYZE")
        for tags in (["s777"], ["c7", "s1007"]):
            query = DCBQuery([DCBQueryItem(tags=tags)])
            self.assertEqual(len(list(recorder.read(query))), 1)
            for limit in (None, 10):
                statement, params = (
                    recorder.sql.select_with_head(query.items, 0)
                    if limit is None
                    else recorder.sql.select(query.items, 0, limit)
                )
                plan = self.plan(connection, vendor, statement, params)
                self.assert_index_plan(vendor, plan, tags)

    @staticmethod
    def plan(connection: Any, vendor: str, statement: str, params: list[Any]) -> str:
        explain = {"sqlite": "EXPLAIN QUERY PLAN "}.get(vendor, "EXPLAIN ")
        with connection.cursor() as cursor:
            cursor.execute(explain + statement, params)
            rows = cursor.fetchall()
        return "\n".join(" ".join(str(c) for c in row) for row in rows)

    def assert_index_plan(self, vendor: str, plan: str, tags: list[str]) -> None:
        if vendor == "postgresql":
            self.assertRegex(plan, r"Index (Only )?Scan using plans_dcb_tags_pkey")
            # The events table is read by key only.
            self.assertNotRegex(plan, r"Seq Scan on plans_dcb\b")
            self.assertNotIn("Seq Scan on plans_dcb_tags", plan)
        elif vendor == "sqlite":
            self.assertRegex(
                plan, r"SEARCH t0 USING PRIMARY KEY \(tag=\? AND position>\?\)"
            )
            self.assertNotRegex(plan, r"SCAN (t\d|plans_dcb_tags)\b")
            self.assertNotRegex(plan, r"SCAN e\b")
        else:  # MariaDB: EXPLAIN's rows, with their access type and key
            # A tag's rows: a range of the tags' primary key.
            self.assertRegex(plan, r"\bt\d (range|ref) PRIMARY PRIMARY\b")
            self.assertNotRegex(plan, r"\bALL\b")  # no full scan of any table
