"""Errors that give the right fix: where a table is missing and how to create just
that; where an unknown alias came from; a missing INSTALLED_APPS entry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, override_settings
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from eventsourcing_django.builder import build_model
from eventsourcing_django.errors import TableMissingError, UnknownDatabaseError
from eventsourcing_django.projections import WorkerRegistration
from eventsourcing_django.recorders import (
    DjangoApplicationRecorder,
    DjangoProcessRecorder,
    DjangoTrackingRecorder,
)
from tests.base import DjangoDBTestCase

ROOT = Path(__file__).resolve().parent.parent
ROUTER = "eventsourcing_django.routers.EventSourcingRouter"
ENV = {"PERSISTENCE_MODULE": "eventsourcing_django"}


class Universe(Application):
    pass


def missing_table_message(call: Any) -> str:
    try:
        call()
    except TableMissingError as e:
        return str(e)
    msg = "no TableMissingError"
    raise AssertionError(msg)


class TestMissingTableAdvice(DjangoDBTestCase):
    databases: ClassVar[set[str]] = {"default", "other"}

    def test_an_application_on_another_alias_is_told_to_migrate_that_alias(
        self,
    ) -> None:
        app = Universe(env={**ENV, "DJANGO_DB_ALIAS": "other", "CREATE_TABLE": "n"})
        message = missing_table_message(lambda: app.save(Aggregate()))
        self.assertIn("'universe_events' of application 'Universe'", message)
        self.assertIn("database 'other'", message)
        # Plain migrate runs on 'default' only: it would create nothing there.
        self.assertIn("'manage.py migrate --database other'", message)
        self.assertIn("CreateApplicationTables('Universe')", message)
        self.assertIn("eventsourcing_tables create Universe --database other", message)

    def test_an_application_on_default_is_told_plain_migrate(self) -> None:
        app = Universe(env={**ENV, "CREATE_TABLE": "n"})
        message = missing_table_message(lambda: app.save(Aggregate()))
        self.assertIn("'manage.py migrate'", message)
        self.assertNotIn("migrate --database", message)

    def test_a_missing_tracking_table_gets_advice_for_that_table_only(self) -> None:
        # A projection's view keeps only tracking, named after the projection.
        view = DjangoTrackingRecorder("WorldSummary", using="other")
        message = missing_table_message(lambda: view.max_tracking_id("Universe"))
        self.assertIn("'worldsummary_tracking' of application 'WorldSummary'", message)
        self.assertIn(
            "CreateApplicationTables('WorldSummary', events=False, snapshots=False, "
            "tracking=True)",
            message,
        )
        self.assertIn(
            "'manage.py eventsourcing_tables create WorldSummary --no-events "
            "--no-snapshots --database other'",
            message,
        )
        self.assertIn("'manage.py migrate --database other'", message)
        self.assertIn("eventsourcing_makemigration <app_label> <projection", message)
        self.assertNotIn("CreateApplicationTables('WorldSummary')", message)

        # Following the advice is enough.
        view.create_table()
        self.assertIsNone(view.max_tracking_id("Universe"))

    def test_a_process_application_with_events_but_no_tracking(self) -> None:
        DjangoApplicationRecorder("Reports", using="other").create_table()
        recorder = DjangoProcessRecorder("Reports", using="other")
        message = missing_table_message(lambda: recorder.max_tracking_id("Universe"))
        self.assertIn("'reports_tracking' of application 'Reports'", message)
        self.assertNotIn("reports_events", message)
        self.assertIn("events=False, snapshots=False, tracking=True", message)

    def test_text_originator_ids_are_part_of_the_advice(self) -> None:
        recorder = DjangoApplicationRecorder("Texts", originator_id_type="text")
        message = missing_table_message(recorder.max_notification_id)
        self.assertIn(
            "CreateApplicationTables('Texts', originator_id_type='text')", message
        )
        self.assertIn("--originator-id-type text", message)


class TestUnknownAlias(DjangoDBTestCase):
    def assert_refused(self, env: dict[str, str], source: str) -> None:
        with self.assertRaises(UnknownDatabaseError) as info:
            Universe(env={**ENV, **env})
        # Both, so callers of earlier versions that catch ValueError still do.
        self.assertIsInstance(info.exception, ValueError)
        self.assertIsInstance(info.exception, ImproperlyConfigured)
        message = str(info.exception)
        self.assertIn("'nowhere' of application 'Universe'", message)
        self.assertIn(f"given by {source}", message)
        self.assertIn("(which has: 'default', 'other')", message)

    def test_from_the_application_env(self) -> None:
        self.assert_refused(
            {"DJANGO_DB_ALIAS": "nowhere"},
            "the env key DJANGO_DB_ALIAS of application 'Universe'",
        )

    @override_settings(
        DATABASE_ROUTERS=[ROUTER], EVENTSOURCING_DATABASES={"universe": "nowhere"}
    )
    def test_from_the_setting(self) -> None:
        # The key as written in the setting, though it matched ignoring case.
        self.assert_refused({}, "settings.EVENTSOURCING_DATABASES['universe']")

    @override_settings(DATABASE_ROUTERS=["tests.test_errors.NowhereRouter", ROUTER])
    def test_from_another_router(self) -> None:
        self.assert_refused({}, "the database router tests.test_errors.NowhereRouter")

    def test_from_a_recorder_made_by_hand(self) -> None:
        with self.assertRaises(UnknownDatabaseError) as info:
            DjangoApplicationRecorder("Universe", using="nowhere")
        self.assertIn("the recorder's argument using='nowhere'", str(info.exception))


class NowhereRouter:
    def db_for_write(self, model: Any, **hints: Any) -> str:
        return "nowhere"


WITHOUT_THE_APP = [a for a in settings.INSTALLED_APPS if a != "eventsourcing_django"]


class TestAppNotInstalled(SimpleTestCase):
    @override_settings(INSTALLED_APPS=WITHOUT_THE_APP)
    def test_projection_workers_say_to_install_the_app(self) -> None:
        with self.assertRaises(ImproperlyConfigured) as info:
            WorkerRegistration([("WorldSummary", "default")]).claim()
        self.assertIn(
            "add 'eventsourcing_django' to INSTALLED_APPS (and run 'manage.py "
            "migrate')",
            str(info.exception),
        )

    @override_settings(INSTALLED_APPS=WITHOUT_THE_APP)
    def test_recorders_models_say_to_install_the_app(self) -> None:
        with self.assertRaisesMessage(ImproperlyConfigured, "INSTALLED_APPS"):
            build_model("events", "notinstalled_events", application_name="X")

    def test_a_project_without_the_app_is_told_to_add_it(self) -> None:
        # A fresh process: nothing has imported our models yet, so without the
        # check Django raised a RuntimeError about ProjectionWorker.
        script = (
            "import django\n"
            "from django.conf import settings\n"
            "settings.configure(INSTALLED_APPS=[], DATABASES={'default': {\n"
            "    'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}})\n"
            "django.setup()\n"
            "from eventsourcing.application import Application\n"
            "Application(env={'PERSISTENCE_MODULE': 'eventsourcing_django'})\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=False,
        )
        self.assertNotEqual(result.returncode, 0)
        last_line = result.stderr.strip().splitlines()[-1]
        self.assertIn("ImproperlyConfigured", last_line)
        self.assertIn("add 'eventsourcing_django' to INSTALLED_APPS", last_line)
        self.assertNotIn("ProjectionWorker", result.stderr)
