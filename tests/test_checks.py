"""Stories of the system checks that catch mistakes in placing applications."""

from __future__ import annotations

import sqlite3
import tempfile
import warnings
from pathlib import Path
from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connections
from django.test import SimpleTestCase, override_settings

from eventsourcing_django.checks import (
    TAG,
    check_declarations,
    check_settings,
    check_sqlite_journal,
)
from tests.base import is_postgres
from tests.routers import TenantSyncRouter

ROUTER = "eventsourcing_django.routers.EventSourcingRouter"


def ids(messages: list[CheckMessage]) -> list[str]:
    return [m.id or "" for m in messages]


@override_settings(
    DATABASE_ROUTERS=[ROUTER],
    EVENTSOURCING_DATABASES={"Universe": "other"},
    EVENTSOURCING_SCHEMAS={},
)
class TestSystemChecks(SimpleTestCase):
    def test_a_sound_configuration_passes(self) -> None:
        self.assertEqual(check_settings(), [])
        with self.settings(
            DATABASE_ROUTERS=[
                "tests.routers.ModestRouter",
                ROUTER,
                "tests.routers.TenantLikeRouter",
            ]
        ):
            self.assertEqual(check_settings(), [])

    def test_no_settings_no_router_passes(self) -> None:
        with self.settings(DATABASE_ROUTERS=[], EVENTSOURCING_DATABASES=None):
            self.assertEqual(check_settings(), [])

    @override_settings(DATABASE_ROUTERS=[])
    def test_E001_the_setting_without_the_router(self) -> None:
        [error] = check_settings()
        self.assertEqual(error.id, "eventsourcing_django.E001")
        self.assertIn("stays on the 'default' database", error.msg)
        self.assertIn(ROUTER, error.hint or "")

    @override_settings(EVENTSOURCING_DATABASES={"Universe": "events"})
    def test_E002_an_alias_not_in_databases(self) -> None:
        [error] = check_settings()
        self.assertEqual(error.id, "eventsourcing_django.E002")
        self.assertIn("'events', which is not in settings.DATABASES", error.msg)
        self.assertEqual(error.hint, "Use one of: 'default', 'other'.")

    @override_settings(
        EVENTSOURCING_DATABASES={"Uni-verse": "other"},
        EVENTSOURCING_SCHEMAS={"U" * 60: "events"},
    )
    def test_E003_names_that_cannot_make_safe_table_names(self) -> None:
        errors = check_settings()
        self.assertEqual(ids(errors), ["eventsourcing_django.E003"] * 2)
        self.assertIn("'Uni-verse'", errors[0].msg)
        self.assertIn("only letters", errors[0].msg)
        self.assertIn("too long", errors[1].msg)

    def test_E004_a_router_before_ours_that_answers_for_our_tables(self) -> None:
        with self.settings(
            DATABASE_ROUTERS=["tests.routers.WritesToDefaultRouter", ROUTER]
        ):
            [error] = check_settings()
        self.assertEqual(error.id, "eventsourcing_django.E004")
        self.assertIn("tests.routers.WritesToDefaultRouter comes before", error.msg)
        self.assertIn("db_for_write sends 'Universe' to 'default'", error.msg)

        with self.settings(DATABASE_ROUTERS=["tests.routers.TenantLikeRouter", ROUTER]):
            [error] = check_settings()
        self.assertEqual(error.id, "eventsourcing_django.E004")

        # django-tenants' router is known by name, whatever it would answer.
        with self.settings(DATABASE_ROUTERS=[TenantSyncRouter(), ROUTER]):
            [error] = check_settings()
        self.assertEqual(error.id, "eventsourcing_django.E004")
        self.assertIn("django_tenants.routers.TenantSyncRouter", error.msg)
        self.assertIn("Put", error.hint or "")

        # After ours, it is fine.
        with self.settings(DATABASE_ROUTERS=[ROUTER, TenantSyncRouter()]):
            self.assertEqual(check_settings(), [])

    @override_settings(EVENTSOURCING_DATABASES=["Universe"])
    def test_E005_a_setting_that_is_not_a_dict_of_names(self) -> None:
        [error] = check_settings()
        self.assertEqual(error.id, "eventsourcing_django.E005")
        self.assertIn("must be a dict of application names", error.msg)

    @override_settings(EVENTSOURCING_SCHEMAS={"Universe": "events; DROP"})
    def test_E006_a_schema_that_is_not_a_safe_identifier(self) -> None:
        [error] = check_settings()
        self.assertEqual(error.id, "eventsourcing_django.E006")

    @override_settings(EVENTSOURCING_RETRIES=-1)
    def test_E015_retry_settings_that_cannot_be_used(self) -> None:
        [error] = check_settings()
        self.assertEqual(error.id, "eventsourcing_django.E015")
        self.assertIn("settings.EVENTSOURCING_RETRIES", error.msg)

    @override_settings(EVENTSOURCING_PROJECTION_BATCH_SIZE=0)
    def test_E016_a_page_of_no_events(self) -> None:
        [error] = check_settings()
        self.assertEqual(error.id, "eventsourcing_django.E016")
        self.assertIn("settings.EVENTSOURCING_PROJECTION_BATCH_SIZE", error.msg)

    @override_settings(EVENTSOURCING_PROJECTION_BATCH_SECONDS="1")
    def test_E016_a_page_time_that_is_not_a_number(self) -> None:
        [error] = check_settings()
        self.assertEqual(error.id, "eventsourcing_django.E016")
        self.assertIn("EVENTSOURCING_PROJECTION_BATCH_SECONDS", error.msg)

    @override_settings(EVENTSOURCING_PROJECTION_BATCH_SECONDS=0)
    def test_E016_a_page_time_of_zero(self) -> None:
        # A page needs some time; a retry may come at once (next test).
        [error] = check_settings()
        self.assertEqual(error.id, "eventsourcing_django.E016")
        self.assertIn("must be a number of seconds, above 0, got 0", error.msg)

    @override_settings(EVENTSOURCING_RETRY_DELAY=0, EVENTSOURCING_RETRIES=0)
    def test_no_retries_and_no_delay_are_fine(self) -> None:
        self.assertEqual(check_settings(), [])

    @override_settings(EVENTSOURCING_RETRY_DELAY=True)
    def test_E015_a_delay_that_is_a_bool(self) -> None:
        [error] = check_settings()
        self.assertEqual(error.id, "eventsourcing_django.E015")
        self.assertIn("RETRY_DELAY must be a number of seconds, 0 or more", error.msg)

    @override_settings(EVENTSOURCING_SCHEMAS={"Universe": "pg_es"})
    def test_E006_a_schema_postgresql_reserves(self) -> None:
        [error] = check_settings()
        self.assertEqual(error.id, "eventsourcing_django.E006")
        self.assertIn("'pg_es' starts with 'pg_'", error.msg)

    @override_settings(EVENTSOURCING_DATABASES={"Universe": "other", "UNIVERSE": "x"})
    def test_E008_two_spellings_of_one_application_in_two_places(self) -> None:
        errors = check_settings()
        self.assertIn("eventsourcing_django.E008", ids(errors))
        [error] = [e for e in errors if e.id == "eventsourcing_django.E008"]
        self.assertIn("share the tables universe_*", error.msg)

    @override_settings(DATABASE_ROUTERS=[])
    def test_the_checks_run_with_manage_py_check(self) -> None:
        self.assertIn("eventsourcing_django.E001", ids(run_checks(tags=[TAG])))
        with self.assertRaisesRegex(SystemCheckError, "eventsourcing_django.E001"):
            call_command("check")
        # Not when checking only other apps.
        testapp = apps.get_app_config("testapp")
        self.assertEqual(check_settings(app_configs=[testapp]), [])


class TestSchemaOnSQLiteCheck(SimpleTestCase):
    # Collected on SQLite and MariaDB only: it is about databases without schemas.
    __test__ = not is_postgres()

    @override_settings(
        DATABASE_ROUTERS=[ROUTER],
        EVENTSOURCING_DATABASES={"Universe": "other"},
        EVENTSOURCING_SCHEMAS={"Universe": "events"},
    )
    def test_E007_a_schema_for_an_application_on_sqlite(self) -> None:
        [error] = check_settings()
        self.assertEqual(error.id, "eventsourcing_django.E007")
        vendor = connections["other"].vendor
        self.assertIn(f"database 'other' ({vendor}), which has no schemas", error.msg)


class TestSchemaOnPostgreSQLCheck(SimpleTestCase):
    __test__ = is_postgres()  # Not collected on SQLite: it has no schemas.

    @override_settings(
        DATABASE_ROUTERS=[ROUTER],
        EVENTSOURCING_DATABASES={"Universe": "other"},
        EVENTSOURCING_SCHEMAS={"Universe": "events"},
    )
    def test_a_schema_for_an_application_on_postgresql_passes(self) -> None:
        self.assertEqual(check_settings(), [])


UNIVERSE = {"class": "tests.testapp.domain:Universe"}
VIEW_PROJECTION = {
    "application": "Universe",
    "projection": "tests.testapp.projections:WorldSummaryProjection",
    "view": "tests.testapp.projections:WorldSummaryView",
}


class SendSummariesToOther:
    """Routes the projection example's read model to 'other'."""

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "other" if model._meta.model_name == "worldsummary" else None


@override_settings(
    EVENTSOURCING_APPLICATIONS={"Universe": UNIVERSE},
    EVENTSOURCING_PROJECTIONS={"WorldSummary": VIEW_PROJECTION},
)
class TestDeclarationChecks(SimpleTestCase):
    def assert_fires(self, check_id: str, fragment: str, **overrides: Any) -> None:
        with self.settings(**overrides):
            messages = check_declarations()
        self.assertEqual(ids(messages), [check_id], messages)
        self.assertIn(fragment, messages[0].msg)

    def test_sound_declarations_pass_and_open_no_connection(self) -> None:
        self.assertEqual(check_declarations(), [])
        self.assertEqual(
            [m for m in run_checks(tags=[TAG]) if m.id and "E0" in m.id], []
        )

    def test_e009_a_malformed_declaration(self) -> None:
        self.assert_fires(
            "eventsourcing_django.E009",
            "unknown key(s) 'klass'",
            EVENTSOURCING_APPLICATIONS={"Universe": {"klass": "x:Y"}},
        )
        self.assert_fires(
            "eventsourcing_django.E009",
            "must be a dict of application names",
            EVENTSOURCING_APPLICATIONS=["Universe"],
        )

    def test_e010_a_class_that_does_not_import_or_is_not_an_application(
        self,
    ) -> None:
        self.assert_fires(
            "eventsourcing_django.E010",
            "cannot be imported",
            EVENTSOURCING_APPLICATIONS={
                "Universe": {"class": "tests.nowhere:Universe"}
            },
        )
        self.assert_fires(
            "eventsourcing_django.E010",
            "is not an Application subclass",
            EVENTSOURCING_APPLICATIONS={
                "Universe": {"class": "tests.testapp.domain:World"}
            },
        )

    def test_e011_an_env_that_cannot_work(self) -> None:
        cases = [
            ({"CIPHER_TOPIC": "eventsourcing.cipher:AESCipher"}, "no CIPHER_KEY"),
            ({"COMPRESSOR_TOPIC": "zlibb"}, "zlibb"),
            ({"CIPHER_KEY": "c2hvcnQ="}, "Invalid key size"),
            ({"DJANGO_DB_ALIAS": "event"}, "'event' is not in settings.DATABASES"),
            ({"DJANGO_LOCK_TIMEOUT": "soon"}, "DJANGO_LOCK_TIMEOUT"),
            ({"ORIGINATOR_ID_TYPE": "int"}, "ORIGINATOR_ID_TYPE"),
        ]
        for env, fragment in cases:
            with self.subTest(env=env):
                self.assert_fires(
                    "eventsourcing_django.E011",
                    fragment,
                    EVENTSOURCING_APPLICATIONS={"Universe": {**UNIVERSE, "env": env}},
                )

    def test_e012_a_projection_whose_classes_do_not_import(self) -> None:
        self.assert_fires(
            "eventsourcing_django.E012",
            "cannot be imported",
            EVENTSOURCING_PROJECTIONS={
                "WorldSummary": {**VIEW_PROJECTION, "view": "tests.nowhere:View"}
            },
        )

    def test_e013_a_projection_of_an_undeclared_application(self) -> None:
        self.assert_fires(
            "eventsourcing_django.E013",
            "'Universes' is not declared",
            EVENTSOURCING_PROJECTIONS={
                "WorldSummary": {**VIEW_PROJECTION, "application": "Universes"}
            },
        )

    def test_w001_a_projection_that_names_an_undeclared_class(self) -> None:
        self.assert_fires(
            "eventsourcing_django.W001",
            "is a class, not a declared application",
            EVENTSOURCING_APPLICATIONS={},
            EVENTSOURCING_PROJECTIONS={
                "WorldSummary": {
                    **VIEW_PROJECTION,
                    "application": "tests.testapp.domain:Universe",
                }
            },
        )

    def test_e014_a_view_whose_models_are_on_another_alias(self) -> None:
        self.assert_fires(
            "eventsourcing_django.E014",
            "send its model testapp.WorldSummary to 'other'",
            DATABASE_ROUTERS=["tests.test_checks.SendSummariesToOther"],
        )


class TestSQLiteJournalCheck(SimpleTestCase):
    """W002 reads the journal mode from the file's header, without connecting."""

    def setUp(self) -> None:
        super().setUp()
        directory = tempfile.TemporaryDirectory(prefix="esdj-checks-")
        self.addCleanup(directory.cleanup)
        self.directory = Path(directory.name)

    def sqlite_file(self, name: str, *, wal: bool) -> str:
        path = self.directory / name
        connection = sqlite3.connect(path)
        if wal:
            connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x INTEGER)")
        connection.commit()
        connection.close()
        return str(path)

    def run_check(self, check: Any, **settings: Any) -> list[CheckMessage]:
        with warnings.catch_warnings():
            # Django warns that overriding DATABASES does not reach connections:
            # the check reads the settings only.
            warnings.simplefilter("ignore")
            with self.settings(**settings):
                messages: list[CheckMessage] = check()
        return messages

    def check(self, events_name: str, **settings: Any) -> list[str]:
        databases = {
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
            "events": {"ENGINE": "django.db.backends.sqlite3", "NAME": events_name},
        }
        settings = {"EVENTSOURCING_DATABASES": {"Universe": "events"}, **settings}
        return ids(
            self.run_check(check_sqlite_journal, DATABASES=databases, **settings)
        )

    def test_w002_an_events_file_in_rollback_mode(self) -> None:
        name = self.sqlite_file("rollback.sqlite3", wal=False)
        [warning] = self.run_check(
            check_sqlite_journal,
            DATABASES={
                "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": name}
            },
            EVENTSOURCING_DATABASES={"Universe": "default"},
        )
        self.assertEqual(warning.id, "eventsourcing_django.W002")
        self.assertIn("rollback-journal mode, not WAL", warning.msg)
        self.assertIn("EVENTSOURCING_SQLITE_WAL = False", warning.hint or "")
        self.assertEqual(
            self.check(name), ["eventsourcing_django.W002"], "on another alias too"
        )

    def test_a_file_in_wal_mode_passes(self) -> None:
        self.assertEqual(self.check(self.sqlite_file("wal.sqlite3", wal=True)), [])

    def test_the_opt_out_silences_it(self) -> None:
        name = self.sqlite_file("rollback.sqlite3", wal=False)
        self.assertEqual(self.check(name, EVENTSOURCING_SQLITE_WAL=False), [])

    def test_no_file_yet_and_in_memory_pass(self) -> None:
        # A file made by the first connection is switched then.
        self.assertEqual(self.check(str(self.directory / "new.sqlite3")), [])
        self.assertEqual(self.check(":memory:"), [])
        self.assertEqual(self.check("file:x?mode=memory&cache=shared"), [])

    def test_only_aliases_that_hold_events(self) -> None:
        name = self.sqlite_file("rollback.sqlite3", wal=False)
        # Events on "default" (in memory): the file of "events" is not theirs.
        self.assertEqual(self.check(name, EVENTSOURCING_DATABASES={}), [])

    def test_registered_under_the_tag(self) -> None:
        name = self.sqlite_file("rollback.sqlite3", wal=False)
        messages = self.run_check(
            lambda: run_checks(tags=[TAG]),
            DATABASES={
                "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": name}
            },
            EVENTSOURCING_DATABASES={},
            EVENTSOURCING_APPLICATIONS={},
        )
        self.assertIn("eventsourcing_django.W002", ids(messages))
