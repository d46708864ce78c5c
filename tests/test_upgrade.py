"""Upgrading from eventsourcing-django 0.x: a team's database, written by 0.x's
recorders in its shared tables, moved to per-application tables by
``manage.py eventsourcing_upgrade``, then used by this version."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any, ClassVar
from unittest.mock import patch
from uuid import UUID

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import override_settings
from eventsourcing.application import Application
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.system import SingleThreadedRunner

from eventsourcing_django.upgrade import ApplicationCopy, plan_upgrade
from tests.base import DjangoDBTestCase, can_upgrade_from_0x, table_names
from tests.legacy import (
    SHARED_TABLES,
    create_shared_tables,
    drop_shared_tables,
    insert_shared_rows,
    shared_tables,
)
from tests.testapp.domain import Universe, World
from tests.testapp.system import Tally, WorldCounter, system

ROOT = Path(__file__).resolve().parent.parent
COMPRESSOR = {"COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor"}
ENV_0X = {"INFRASTRUCTURE_FACTORY": "tests.legacy:LegacyFactory", **COMPRESSOR}
ENV = {"PERSISTENCE_MODULE": "eventsourcing_django", **COMPRESSOR}
ROUTED = {
    "DATABASE_ROUTERS": ["eventsourcing_django.routers.EventSourcingRouter"],
    "EVENTSOURCING_DATABASES": {"Universe": "other", "WorldCounter": "other"},
}


@dataclass
class Recorded:
    """What an application's recorders give back: its log, histories, snapshots."""

    notifications: list[Notification]
    histories: dict[UUID, list[StoredEvent]]
    snapshots: dict[UUID, list[StoredEvent]]


def recorded(app: Application[Any]) -> Recorded:
    notifications = list(app.recorder.select_notifications(start=1, limit=100_000))
    ids = list(dict.fromkeys(n.originator_id for n in notifications))
    snapshots = app.snapshots.recorder if app.snapshots else None
    return Recorded(
        notifications=notifications,
        histories={i: list(app.recorder.select_events(i)) for i in ids},
        snapshots={i: list(snapshots.select_events(i)) for i in ids}
        if snapshots
        else {},
    )


@dataclass
class Written:
    """A system run on 0.x: what its applications hold, and the worlds made."""

    universe: Recorded
    counter: Recorded
    histories: dict[UUID, list[str]]
    worlds: int


def run_on_0x(alias: str = "default", worlds: int = 6, things: int = 6) -> Written:
    """A leader and a process application following it, on 0.x's recorders,
    with zlib-compressed states and a snapshot every 5 versions of a world."""
    create_shared_tables(alias)
    runner = SingleThreadedRunner(system, env={**ENV_0X, "LEGACY_DB_ALIAS": alias})
    runner.start()
    try:
        universe = runner.get(Universe)
        counter = runner.get(WorldCounter)
        histories = {}
        for w in range(worlds):
            world_id = universe.create_world()
            for n in range(things):
                universe.make_it_so(world_id, f"world {w} thing {n}")
            histories[world_id] = universe.repository.get(world_id).history
        assert counter.count() == worlds
        return Written(recorded(universe), recorded(counter), histories, worlds)
    finally:
        runner.stop()


def own_tables(alias: str) -> set[str]:
    """Per-application tables on ``alias``, the shared tables left out."""
    return table_names(alias) - set(SHARED_TABLES)


def upgrade(*args: str, **options: Any) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("eventsourcing_upgrade", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


class UpgradeTestCase(DjangoDBTestCase):
    databases: ClassVar[set[str]] = {"default", "other"}  # type: ignore[misc]

    def _post_teardown(self) -> None:
        try:
            for alias in self.databases:
                drop_shared_tables(alias)
        finally:
            super()._post_teardown()

    def assert_reads_the_same(self, before: Written) -> tuple[Universe, WorldCounter]:
        universe, counter = Universe(env=ENV), WorldCounter(env=ENV)
        after_universe, after_counter = recorded(universe), recorded(counter)
        # The same events, in the same order, with the same notification IDs.
        self.assertEqual(after_universe.notifications, before.universe.notifications)
        self.assertEqual(after_counter.notifications, before.counter.notifications)
        self.assertEqual(after_universe.histories, before.universe.histories)
        self.assertEqual(after_universe.snapshots, before.universe.snapshots)
        self.assertEqual(after_counter.histories, before.counter.histories)
        self.assertTrue(any(before.universe.snapshots.values()))
        for world_id, history in before.histories.items():
            self.assertEqual(universe.repository.get(world_id).history, history)
        return universe, counter


class TestUpgrade(UpgradeTestCase):
    __test__ = can_upgrade_from_0x()  # Not collected on MariaDB.

    def test_a_system_reads_the_same_after_the_upgrade_and_follows_on(self) -> None:
        before = run_on_0x()
        # 0.x numbered both applications from one sequence.
        ids = [n.id for n in before.universe.notifications]
        self.assertNotEqual(ids, list(range(1, len(ids) + 1)))

        out, _ = upgrade()

        self.assertIn("Upgrading Universe", out)
        self.assertIn("Upgrading WorldCounter", out)
        self.assertIn(f"Verified: {len(ids)} events", out)
        self.assertEqual(out.count("Verified"), 2)
        self.assertEqual(
            shared_tables(), {"stored_events", "snapshots", "notification_tracking"}
        )
        universe, counter = self.assert_reads_the_same(before)
        # The follower's position is the last notification of the leader.
        self.assertEqual(counter.recorder.max_tracking_id("Universe"), ids[-1])

        # Run on this version, the follower processes only what comes after.
        runner = SingleThreadedRunner(system, env=ENV)
        runner.start()
        try:
            universe, counter = runner.get(Universe), runner.get(WorldCounter)
            self.assertEqual(counter.count(), before.worlds)
            new_world = universe.create_world()
            universe.make_it_so(new_world, "after the upgrade")
            self.assertEqual(counter.count(), before.worlds + 1)
            # Created, then one increment per world: none processed twice.
            tally = counter.repository.get(Tally.create_id("worlds"))
            self.assertEqual(tally.version, 1 + before.worlds + 1)
            self.assertEqual(
                counter.recorder.max_tracking_id("Universe"),
                universe.recorder.max_notification_id(),
            )
        finally:
            runner.stop()
        # New events are numbered after the largest copied.
        after = universe.recorder.select_notifications(start=ids[-1] + 1, limit=10)
        self.assertEqual([n.id for n in after], [ids[-1] + 1, ids[-1] + 2])

    def test_running_it_again_copies_nothing_twice(self) -> None:
        before = run_on_0x(worlds=2)
        upgrade(verbosity=0)
        out, _ = upgrade()
        self.assertEqual(out.count("Verified"), 2)
        self.assert_reads_the_same(before)

    def test_a_dry_run_tells_what_it_would_copy_and_writes_nothing(self) -> None:
        before = run_on_0x(worlds=2, things=4)
        events = len(before.universe.notifications)
        snapshots = sum(map(len, before.universe.snapshots.values()))

        out, _ = upgrade("--dry-run", "--drop-legacy")

        self.assertIn(
            f"Universe: would copy {events} of {events} events, {snapshots} of "
            f"{snapshots} snapshots and 0 of 0 tracking positions to "
            "universe_events, universe_snapshots on database 'default'.",
            out,
        )
        self.assertIn(
            "1 of 1 tracking positions to worldcounter_events, "
            "worldcounter_snapshots, worldcounter_tracking",
            out,
        )
        self.assertIn(
            "Would then drop notification_tracking, snapshots, "
            "stored_events from database 'default'.",
            out,
        )
        self.assertEqual(own_tables("default"), set())

    def test_a_dry_run_after_a_partial_copy_tells_what_is_left(self) -> None:
        before = run_on_0x(worlds=2, things=4)
        upgrade("Universe", verbosity=0)
        out, _ = upgrade("--dry-run")
        events = len(before.universe.notifications)
        self.assertIn(f"Universe: would copy 0 of {events} events", out)
        counter_events = len(before.counter.notifications)
        self.assertIn(
            f"WorldCounter: would copy {counter_events} of {counter_events} events", out
        )

    def test_it_refuses_when_a_target_holds_events_of_its_own(self) -> None:
        run_on_0x(worlds=1)
        # Someone ran the application on this version before upgrading.
        Universe(env=ENV).create_world()

        with self.assertRaises(CommandError) as cm:
            upgrade("--drop-legacy", "--noinput", verbosity=0)

        message = str(cm.exception)
        self.assertIn(
            "table 'universe_events' on database 'default' holds 1 "
            "events that are not copies",
            message,
        )
        self.assertIn("move them out of the way", message)
        self.assertEqual(len(shared_tables()), 3)
        self.assertEqual(Universe(env=ENV).recorder.max_notification_id(), 1)

    def test_it_refuses_a_tracking_position_not_from_the_shared_tables(self) -> None:
        run_on_0x(worlds=1)
        from eventsourcing.persistence import Tracking

        WorldCounter(env=ENV).recorder.insert_tracking(Tracking("Elsewhere", 3))
        with self.assertRaises(CommandError) as cm:
            upgrade("WorldCounter", verbosity=0)
        self.assertIn("'worldcounter_tracking'", str(cm.exception))
        self.assertIn("'Elsewhere'", str(cm.exception))

    def test_drop_legacy_drops_the_shared_tables_after_verifying(self) -> None:
        before = run_on_0x(worlds=2)
        out, _ = upgrade("--drop-legacy", "--noinput")
        self.assertEqual(shared_tables(), set())
        self.assertIn(
            "Dropped 'notification_tracking', 'snapshots', "
            "'stored_events' from database 'default'.",
            out,
        )
        self.assert_reads_the_same(before)

    def test_a_0x_writer_during_the_copy_fails_verification_and_drops_nothing(
        self,
    ) -> None:
        before = run_on_0x(worlds=2)
        world_id = next(iter(before.histories))
        copy_snapshots = ApplicationCopy.copy_snapshots

        def copy_snapshots_while_0x_writes(copy: ApplicationCopy, *args: Any) -> None:
            copy_snapshots(copy, *args)
            if copy.name == "Universe":
                app = Universe(env={**ENV_0X, "LEGACY_DB_ALIAS": "default"})
                app.make_it_so(world_id, "written by 0.x during the upgrade")

        with (
            patch.object(
                ApplicationCopy, "copy_snapshots", copy_snapshots_while_0x_writes
            ),
            self.assertRaises(CommandError) as cm,
        ):
            upgrade("--drop-legacy", "--noinput", verbosity=0)

        message = str(cm.exception)
        self.assertIn(
            "Application 'Universe': the copy on database 'default' "
            "does not match the shared tables",
            message,
        )
        self.assertIn(
            "Are processes of eventsourcing-django 0.x still writing? "
            "Stop them and run the upgrade again",
            message,
        )
        self.assertEqual(len(shared_tables()), 3)

        # Stopped, the writer's event is copied by the next run.
        upgrade("--drop-legacy", "--noinput", verbosity=0)
        self.assertEqual(shared_tables(), set())
        history = Universe(env=ENV).repository.get(world_id).history
        self.assertEqual(history[-1], "written by 0.x during the upgrade")

    def test_drop_legacy_refuses_when_some_applications_stay(self) -> None:
        run_on_0x(worlds=1)
        with self.assertRaises(CommandError) as cm:
            upgrade("Universe", "--drop-legacy", "--noinput")
        self.assertIn("'WorldCounter'", str(cm.exception))
        self.assertEqual(len(shared_tables()), 3)
        self.assertEqual(own_tables("default"), set())

    def test_unsafe_names_are_reported_and_left_in_place(self) -> None:
        before = run_on_0x(worlds=1)
        app = Application[UUID](env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        world = World()
        world.make_it_so("x")
        events = [app.mapper.to_stored_event(e) for e in world.collect_events()]
        insert_shared_rows("default", "my-app", events)
        insert_shared_rows("default", "stored", events)  # stored_events!

        out, err = upgrade()

        self.assertIn(
            "Skipped application 'my-app': Application name 'my-app' "
            "cannot make safe table names",
            err,
        )
        self.assertIn(
            "Skipped application 'stored': its table 'stored_events' "
            "would be one of the shared tables",
            err,
        )
        self.assertIn("Its rows stay in the shared tables.", err)
        self.assertEqual(out.count("Verified"), 2)
        self.assert_reads_the_same(before)
        self.assertNotIn("stored_snapshots", own_tables("default"))
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT application_name, COUNT(*) FROM stored_events "
                "WHERE application_name IN ('my-app', 'stored') "
                "GROUP BY application_name ORDER BY 1"
            )
            self.assertEqual(cursor.fetchall(), [("my-app", 2), ("stored", 2)])
        # And the shared tables, holding them, are never dropped.
        with self.assertRaises(CommandError) as cm:
            upgrade("--drop-legacy", "--noinput", verbosity=0)
        self.assertIn("'my-app', 'stored'", str(cm.exception))
        self.assertEqual(len(shared_tables()), 3)

    def test_names_equal_but_for_case_are_both_left_in_place(self) -> None:
        run_on_0x(worlds=1)
        app = Application[UUID](env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        world = World()
        events = [app.mapper.to_stored_event(e) for e in world.collect_events()]
        insert_shared_rows("default", "UNIVERSE", events)

        out, err = upgrade()

        self.assertIn(
            "Skipped application 'UNIVERSE': its tables would be shared with "
            "application 'Universe'",
            err,
        )
        self.assertIn("Skipped application 'Universe'", err)
        self.assertNotIn("universe_events", own_tables("default"))
        self.assertIn("Upgrading WorldCounter", out)

    def test_unknown_names_and_databases_are_refused_with_what_is_there(self) -> None:
        run_on_0x(worlds=1)
        with self.assertRaises(CommandError) as cm:
            upgrade("Multiverse")
        self.assertIn(
            "Application 'Multiverse' has no rows in the shared tables "
            "on database 'default'. Applications found there: "
            "'Universe', 'WorldCounter'.",
            str(cm.exception),
        )
        with self.assertRaises(CommandError) as cm:
            upgrade(database="other")
        self.assertIn(
            "Database 'other' has no table 'stored_events'", str(cm.exception)
        )
        with self.assertRaises(CommandError) as cm:
            upgrade(database="elsewhere")
        self.assertIn(
            "Database 'elsewhere' is not in settings.DATABASES; use one of: "
            "'default', 'other'.",
            str(cm.exception),
        )
        with connections["default"].cursor() as cursor:
            cursor.execute("DROP TABLE snapshots")
        with self.assertRaises(CommandError) as cm:
            upgrade()
        self.assertIn(
            "Database 'default' has 'stored_events' but not 'snapshots'",
            str(cm.exception),
        )

    @override_settings(**ROUTED)
    def test_applications_routed_to_another_database(self) -> None:
        before = run_on_0x()
        out, _ = upgrade()
        self.assertIn("to database 'other'", out)
        self.assertEqual(own_tables("default"), set())
        self.assertEqual(
            own_tables("other"),
            {
                "universe_events",
                "universe_snapshots",
                "worldcounter_events",
                "worldcounter_snapshots",
                "worldcounter_tracking",
            },
        )
        universe, _ = self.assert_reads_the_same(before)
        self.assertEqual(universe.recorder.using, "other")
        # Again: nothing twice, across databases too.
        upgrade(verbosity=0)
        self.assert_reads_the_same(before)
        last = before.universe.notifications[-1].id
        universe.create_world()
        self.assertEqual(universe.recorder.max_notification_id(), last + 1)


class Interrupted(Exception):
    pass


class TestInterruptedCopies(UpgradeTestCase):
    __test__ = can_upgrade_from_0x()  # Not collected on MariaDB.

    """A copy stopped half way (here by an error after some batches) goes on
    where it stopped, on either path: in the server, or across databases. (On
    PostgreSQL, the server's copy into an empty table commits each batch only
    when told to: see tests/postgres/test_upgrade_postgres.py.)"""

    def interrupt_then_finish(self) -> None:
        before = run_on_0x(worlds=4, things=9)
        plan = plan_upgrade(
            "default", ["Universe"], batch_size=7, commit_each_batch=True
        )
        (copy,) = plan.copies
        batches = 0

        def stop_after_three_batches(rows: int) -> None:
            nonlocal batches
            batches += 1
            if batches == 3:
                raise Interrupted

        with self.assertRaises(Interrupted):
            copy.run(stop_after_three_batches)
        self.assertEqual(copy.copied().events, 21)

        out, _ = upgrade()
        self.assertEqual(out.count("Verified"), 2)
        self.assert_reads_the_same(before)

    def test_in_the_server(self) -> None:
        self.interrupt_then_finish()

    @override_settings(**ROUTED)
    def test_across_databases(self) -> None:
        self.interrupt_then_finish()


class TestProgress(UpgradeTestCase):
    __test__ = can_upgrade_from_0x()  # Not collected on MariaDB.

    """A bar per application that counts every row copied, on every path."""

    def assert_bar_counts_every_row(self, *args: str) -> None:
        before = run_on_0x(worlds=3)
        events = len(before.universe.notifications)
        snapshots = sum(map(len, before.universe.snapshots.values()))
        _, err = upgrade("Universe", "--batch-size=4", *args)
        self.assertIn("Universe: 100%", err)
        self.assertIn(f" {events + snapshots}/{events + snapshots} ", err)
        _, err = upgrade("WorldCounter", verbosity=0)
        self.assertEqual(err, "")

    def test_in_the_server(self) -> None:
        self.assert_bar_counts_every_row()

    def test_in_the_server_committing_each_batch(self) -> None:
        self.assert_bar_counts_every_row("--commit-each-batch")

    @override_settings(**ROUTED)
    def test_across_databases(self) -> None:
        self.assert_bar_counts_every_row()


def start_upgrade(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ESDJ_USE_TEST_DATABASES": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django",
            "eventsourcing_upgrade",
            "--settings=settings_test",
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def count_or_zero(alias: str, table: str) -> int:
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            return int(cursor.fetchone()[0])  # type: ignore[index]
    except Exception:
        return 0


def write_many_0x(worlds: int, things: int) -> None:
    """Many worlds, each with a snapshot, written at once into 0.x's tables."""
    create_shared_tables()
    app = Universe(env={"PERSISTENCE_MODULE": "eventsourcing.popo", **COMPRESSOR})
    stored, snapshots = [], []
    for _ in range(worlds):
        world = World()
        for n in range(things):
            world.make_it_so(f"thing {n}")
        stored += [app.mapper.to_stored_event(e) for e in world.collect_events()]
        snapshots.append(app.mapper.to_stored_event(Snapshot.take(world)))
    insert_shared_rows("default", "Universe", stored, snapshots)


class TestKilledMidCopy(UpgradeTestCase):
    __test__ = can_upgrade_from_0x()  # Not collected on MariaDB.

    @pytest.mark.crash
    def test_killed_mid_copy_then_run_again_equals_an_uninterrupted_copy(self) -> None:
        write_many_0x(worlds=400, things=19)
        events = 400 * 20
        expected = recorded(Universe(env=ENV_0X))
        self.assertEqual(len(expected.notifications), events)

        process = start_upgrade("--batch-size=20", "--commit-each-batch")
        try:
            deadline = time.monotonic() + 60
            while count_or_zero("default", "universe_events") < 200:
                self.assertIsNone(process.poll(), "finished before it was killed")
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.01)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        killed_at = count_or_zero("default", "universe_events")
        self.assertLess(killed_at, events, "killed too late to test a restart")
        self.assertEqual(process.returncode, -signal.SIGKILL)

        out, _ = upgrade()

        self.assertIn(f"Verified: {events} events", out)
        universe = Universe(env=ENV)
        after = recorded(universe)
        self.assertEqual(after.notifications, expected.notifications)
        self.assertEqual(after.histories, expected.histories)
        self.assertEqual(after.snapshots, expected.snapshots)
        self.assertEqual(sum(map(len, after.snapshots.values())), 400)
        # Numbering goes on after the largest, as after an uninterrupted copy.
        universe.create_world()
        self.assertEqual(universe.recorder.max_notification_id(), events + 1)
