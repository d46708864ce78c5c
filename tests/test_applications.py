"""Applications declared once in settings, and used the same way everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from io import StringIO
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import override_settings
from eventsourcing.cipher import AESCipher

from eventsourcing_django.applications import (
    ApplicationNotDeclaredError,
    close_applications,
    declaration,
    get_application,
    runner_env,
)
from tests.base import DjangoDBTestCase
from tests.testapp.domain import Universe
from tests.testapp.models import WorldSummary
from tests.testapp.system import WorldCounter, system

ROOT = Path(__file__).resolve().parent.parent
UNIVERSE = "tests.testapp.domain:Universe"
COUNTER = "tests.testapp.system:WorldCounter"
KEY = AESCipher.create_key(16)
SEALED = {
    "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
    "CIPHER_TOPIC": "eventsourcing.cipher:AESCipher",
    "CIPHER_KEY": KEY,
}
SEALED_APPLICATIONS = {
    "Universe": {"class": UNIVERSE, "env": SEALED},
    "WorldCounter": {"class": COUNTER, "env": SEALED},
}


class TestGetApplication(DjangoDBTestCase):
    def setUp(self) -> None:
        close_applications()
        self.addCleanup(close_applications)

    def test_one_instance_per_process_built_on_first_use_in_any_thread(self) -> None:
        got: list[Universe] = []
        barrier = threading.Barrier(8)

        def ask() -> None:
            barrier.wait()
            got.append(get_application(Universe))

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(len(got), 8)
        self.assertTrue(all(app is got[0] for app in got))
        self.assertIs(get_application("Universe"), got[0])
        self.assertIsInstance(got[0], Universe)

    def test_the_declared_env_is_used(self) -> None:
        with override_settings(EVENTSOURCING_APPLICATIONS=SEALED_APPLICATIONS):
            universe = get_application(Universe)
            self.assertIsNotNone(universe.mapper.compressor)
            self.assertIsNotNone(universe.mapper.cipher)
        # Changing the declarations forgets the instances built from the old ones.
        self.assertIsNot(get_application(Universe), universe)
        self.assertIsNone(get_application(Universe).mapper.cipher)

    def test_closed_instances_are_built_again(self) -> None:
        first = get_application(Universe)
        close_applications()
        self.assertIsNot(get_application(Universe), first)

    def test_an_undeclared_application_is_refused_naming_the_declared_ones(
        self,
    ) -> None:
        with self.assertRaises(ApplicationNotDeclaredError) as caught:
            get_application("Universes")
        self.assertIn("'Universes' is not declared", str(caught.exception))
        self.assertIn("'Universe', 'WorldCounter'", str(caught.exception))
        self.assertIsInstance(caught.exception, ImproperlyConfigured)

    def test_a_declaration_under_another_name_is_refused(self) -> None:
        with (
            override_settings(
                EVENTSOURCING_APPLICATIONS={"World": {"class": UNIVERSE}}
            ),
            self.assertRaisesMessage(
                ImproperlyConfigured, "is the application named 'Universe', not 'World'"
            ),
        ):
            get_application("World")

    def test_malformed_declarations_are_refused_with_the_key(self) -> None:
        cases: list[tuple[Any, str]] = [
            ({"class": "tests.testapp.domain.Universe"}, "'package.module:ClassName'"),
            ({"class": UNIVERSE, "envs": {}}, "unknown key(s) 'envs'"),
            ({"class": UNIVERSE, "env": {"A": [1]}}, "['env'] must be a dict"),
            ("tests.testapp.domain:Universe", "must be a dict with a 'class'"),
        ]
        for entry, message in cases:
            with (
                self.subTest(entry=entry),
                override_settings(EVENTSOURCING_APPLICATIONS={"Universe": entry}),
                self.assertRaisesMessage(ImproperlyConfigured, message),
            ):
                declaration("Universe")

    def test_runner_env_gives_each_application_its_declared_keys(self) -> None:
        with override_settings(EVENTSOURCING_APPLICATIONS=SEALED_APPLICATIONS):
            env = runner_env(system)
        self.assertEqual(env["UNIVERSE_CIPHER_KEY"], KEY)
        self.assertEqual(env["WORLDCOUNTER_PERSISTENCE_MODULE"], "eventsourcing_django")
        self.assertNotIn("CIPHER_KEY", env)


@override_settings(EVENTSOURCING_APPLICATIONS=SEALED_APPLICATIONS)
class TestCommandsReadWhatViewsWrote(DjangoDBTestCase):
    """A compressed and encrypted Universe, declared once, read by every command."""

    def setUp(self) -> None:
        close_applications()
        self.addCleanup(close_applications)
        universe = get_application(Universe)
        self.world_ids = [universe.create_world() for _ in range(3)]
        for world_id in self.world_ids:
            universe.make_it_so(world_id, "dinosaurs")
            universe.make_it_so(world_id, "trucks")

    def stored_states(self) -> list[bytes]:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT state FROM universe_events")
            return [bytes(row[0]) for row in cursor.fetchall()]

    def assert_summaries(self) -> None:
        rows = {
            s.world_id: (s.history_length, s.last_what)
            for s in WorldSummary.objects.all()
        }
        self.assertEqual(rows, {w: (2, "trucks") for w in self.world_ids})

    def test_the_events_are_stored_sealed(self) -> None:
        states = self.stored_states()
        self.assertEqual(len(states), 9)
        # Encrypted: no plain JSON of any event (a ciphertext may start with any
        # byte, so only what the plain state would contain is looked for).
        self.assertFalse(
            any(b"dinosaurs" in s or b"originator_topic" in s for s in states)
        )

    def test_run_projections_and_rebuild_projection_read_them(self) -> None:
        call_command("run_projections", "WorldSummary", "--catch-up-only", verbosity=0)
        self.assert_summaries()
        out = StringIO()
        call_command("rebuild_projection", "WorldSummary", stdout=out)
        self.assertIn("Rebuilt WorldSummary: 9 events replayed.", out.getvalue())
        self.assert_summaries()

    def test_sync_followers_reads_them(self) -> None:
        with override_settings(EVENTSOURCING_RUNNER="tests.testapp.system.system"):
            out = StringIO()
            call_command("sync_followers", stdout=out)
        self.assertIn("WorldCounter... OK", out.getvalue())
        self.assertEqual(get_application(WorldCounter).count(), 3)

    def test_without_the_declaration_a_command_cannot_read_them(self) -> None:
        # The projection names the class: built without the declared env, its
        # mapper cannot decrypt what the views wrote.
        projections = {
            "WorldSummary": {
                "application": UNIVERSE,
                "projection": "tests.testapp.projections:WorldSummaryProjection",
                "view": "tests.testapp.projections:WorldSummaryView",
            }
        }
        with (
            override_settings(
                EVENTSOURCING_APPLICATIONS={}, EVENTSOURCING_PROJECTIONS=projections
            ),
            self.assertRaises(CommandError),
        ):
            call_command(
                "run_projections", "WorldSummary", "--catch-up-only", verbosity=0
            )
        self.assertEqual(WorldSummary.objects.count(), 0)


# Probes that Django starts, checks and runs unrelated commands without opening a
# database connection: every attempt to connect is counted and refused.
NO_CONNECTION_PROBE = """
import sys
from django.db.backends.base import base

attempts = []
def refuse(self, *args, **kwargs):
    attempts.append(self.alias)
    raise RuntimeError(f"connection attempted to {self.alias!r}")
base.BaseDatabaseWrapper.connect = refuse

from django.core.management import execute_from_command_line
try:
    execute_from_command_line(["manage.py", *sys.argv[1:]])
finally:
    print(f"connection attempts: {len(attempts)}", file=sys.stderr)
"""


def run_without_database(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "settings_test",
        "PYTHONPATH": str(ROOT),
        # A PostgreSQL port where nothing listens: the events database is down.
        "ESDJ_DATABASE": "postgres",
        "ESDJ_PG_PORT": "9",
    }
    return subprocess.run(
        [sys.executable, "-c", NO_CONNECTION_PROBE, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_and_other_commands_run_with_the_database_down() -> None:
    for args in (
        ["check"],
        ["check", "--tag", "eventsourcing"],
        ["collectstatic", "--help"],
    ):
        result = run_without_database(*args)
        assert result.returncode == 0, result.stderr
        assert "connection attempts: 0" in result.stderr
        assert "Accessing the database" not in result.stderr


def test_the_probe_sees_a_command_that_needs_the_database() -> None:
    result = run_without_database("eventsourcing_tables", "list", "Universe")
    assert result.returncode != 0
    assert "connection attempts: 0" not in result.stderr
