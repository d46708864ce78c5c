"""Projections into ordinary Django models: the README's WorldSummary example,
run by the worker command, killed and restarted, rebuilt; and system runners."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connections
from django.test import override_settings
from eventsourcing.persistence import Tracking
from eventsourcing.system import MultiThreadedRunner, SingleThreadedRunner

from eventsourcing_django.projections import LoadedProjection, projection_specs
from eventsourcing_django.rebuild import SwapRebuild
from tests.base import DjangoDBTestCase
from tests.testapp import system as system_module
from tests.testapp.domain import Universe, World
from tests.testapp.models import WorldSummary
from tests.testapp.projections import WorldSummaryView
from tests.testapp.system import WorldCounter, system

ROOT = Path(__file__).resolve().parent.parent
ENV = {"PERSISTENCE_MODULE": "eventsourcing_django"}


def write_worlds(app: Universe, worlds: int, things_each: int) -> list[UUID]:
    ids = []
    for _ in range(worlds):
        world_id = app.create_world()
        for n in range(things_each):
            app.make_it_so(world_id, f"thing {n}")
        ids.append(world_id)
    return ids


def save_worlds(app: Universe, worlds: int, things_each: int) -> list[UUID]:
    """As write_worlds, but each world saved once with all its events (one
    transaction a world, not one an event): a quick backlog for a worker."""
    ids = []
    for _ in range(worlds):
        world = World()
        for n in range(things_each):
            world.make_it_so(f"thing {n}")
        app.save(world)
        ids.append(world.id)
    return ids


def summaries() -> dict[UUID, tuple[int, str]]:
    return {
        s.world_id: (s.history_length, s.last_what) for s in WorldSummary.objects.all()
    }


def loaded() -> LoadedProjection:
    return LoadedProjection(projection_specs(["WorldSummary"])[0])


def position() -> int:
    projection = loaded()
    try:
        return projection.position()
    finally:
        projection.close()


def tracked_position() -> int:
    """The WorldSummary view's position, read with one query (fast enough to
    catch a worker between pages)."""
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT notification_id FROM worldsummary_tracking "
                "WHERE application_name = %s",
                ["Universe"],
            )
            row = cursor.fetchone()
    except DatabaseError:
        return 0  # The worker has not made its table yet.
    return int(row[0]) if row else 0


def start_worker(*args: str, batch_size: int | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "ESDJ_USE_TEST_DATABASES": "1", "PYTHONPATH": str(ROOT)}
    if batch_size is not None:
        env["ESDJ_PROJECTION_BATCH_SIZE"] = str(batch_size)
        # Pages end by their size only, however slow a loaded machine is.
        env["ESDJ_PROJECTION_BATCH_SECONDS"] = "600"
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django",
            "run_projections",
            "WorldSummary",
            "--settings=settings_test",
            "--heartbeat=0.2",
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: Any, timeout: float = 60.0, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            msg = "timed out"
            raise TimeoutError(msg)
        time.sleep(poll)


class TestWorldSummaryProjection(DjangoDBTestCase):
    def assert_summaries_match(self, app: Universe, world_ids: list[UUID]) -> None:
        rows = summaries()
        self.assertEqual(set(rows), set(world_ids))
        for world_id in world_ids:
            history = app.repository.get(world_id).history
            # Exactly once: one row per world, one increment per event.
            self.assertEqual(
                rows[world_id], (len(history), history[-1] if history else "")
            )

    @pytest.mark.crash
    def test_catch_up_on_1000_events_then_follow_surviving_sigkill(self) -> None:
        app = Universe(env=ENV)
        world_ids = save_worlds(app, worlds=100, things_each=9)  # 1,000 events
        self.assertEqual(app.recorder.max_notification_id(), 1000)

        # Small pages: still catching up when killed.
        worker = start_worker(batch_size=10)
        try:
            wait_until(lambda: position() >= 150)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        killed_at = position()
        self.assertLess(killed_at, 1000, "killed too late to test a restart")
        self.assertEqual(
            WorldSummary.objects.count()
            + sum(s.history_length for s in WorldSummary.objects.all()),
            killed_at,
        )

        # A restart on the same machine takes over from the dead worker at once.
        worker = start_worker()
        try:
            wait_until(lambda: position() == 1000)
            more = write_worlds(app, worlds=10, things_each=4)  # 50 events, live
            wait_until(lambda: position() == 1050)
        finally:
            worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=30)
        self.assertEqual(worker.returncode, 0, err)
        self.assertIn("Stopped.", out)
        self.assert_summaries_match(app, world_ids + more)

    @pytest.mark.crash
    def test_a_sigkill_in_the_middle_of_a_page_then_a_restart_applies_each_once(
        self,
    ) -> None:
        app = Universe(env=ENV)
        world_ids = save_worlds(app, worlds=500, things_each=9)  # 5,000 events
        # The first event is applied on its own (it makes the tracking row),
        # then the rest of the first 100, then pages of 100: commits land on
        # 1, 100, 200, ...
        worker = start_worker("--catch-up-only", batch_size=100)
        try:
            wait_until(lambda: tracked_position() >= 200, poll=0.005)
        finally:
            # Straight on into the next page: killed in the middle of it.
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        killed_at = position()
        self.assertLess(killed_at, 5000, "killed too late to test a restart")
        self.assertIn(killed_at % 100, (0, 1), "a page was committed in part")
        self.assertEqual(
            WorldSummary.objects.count()
            + sum(s.history_length for s in WorldSummary.objects.all()),
            killed_at,
        )

        worker = start_worker("--catch-up-only", batch_size=100)
        _, err = worker.communicate(timeout=120)
        self.assertEqual(worker.returncode, 0, err)
        self.assertEqual(position(), 5000)
        self.assert_summaries_match(app, world_ids)

    def test_a_failing_event_in_a_page_rolls_back_only_from_that_event(self) -> None:
        app = Universe(env=ENV)
        world_id = app.create_world()
        for n in range(10):
            app.make_it_so(world_id, f"thing {n}")
        app.make_it_so(world_id, "explode")  # notification 12
        app.make_it_so(world_id, "after")
        projection = loaded()
        try:
            with self.assertRaises(ValueError) as raised:
                # Pages: 1 alone, 2-5, 6-10, then 11-13 fails at 12, and is
                # applied again one by one: 11 is kept, 12 raises.
                projection.catch_up(page_size=5)
            notes = raised.exception.__notes__
            self.assertIn("notification 12 of 'Universe'", " ".join(notes))
            self.assertEqual(projection.position(), 11)
        finally:
            projection.close()
        self.assertEqual(summaries(), {world_id: (10, "thing 9")})

    def test_a_page_already_applied_is_a_no_op(self) -> None:
        app = Universe(env=ENV)
        world_ids = write_worlds(app, worlds=5, things_each=3)  # 20 events
        projection = loaded()
        try:
            projection.catch_up(page_size=20)
            # As after a crash between the commit and the next read of the
            # position: the same page again changes nothing.
            notifications = app.recorder.select_notifications(start=1, limit=20)
            self.assertEqual(projection.apply(notifications, seconds=60.0), 20)
        finally:
            projection.close()
        self.assertEqual(position(), 20)
        self.assert_summaries_match(app, world_ids)

    def test_a_projection_may_take_a_whole_page_at_once(self) -> None:
        app = Universe(env=ENV)
        world_ids = write_worlds(app, worlds=30, things_each=0)
        projection = loaded()
        pages: list[int] = []

        def process_page(events: list[Any], tracking: Tracking) -> None:
            pages.append(len(events))
            WorldSummary.objects.bulk_create(
                WorldSummary(world_id=e.originator_id) for e in events
            )

        projection.projection.process_page = process_page  # type: ignore[attr-defined]
        try:
            self.assertEqual(projection.catch_up(page_size=10), 30)
        finally:
            projection.close()
        self.assertEqual(pages, [9, 10, 10])  # the first event went alone
        self.assertEqual(position(), 30)
        self.assert_summaries_match(app, world_ids)

    def test_an_error_rolls_back_the_events_changes_and_its_tracking(self) -> None:
        app = Universe(env=ENV)
        world_id = app.create_world()
        app.make_it_so(world_id, "dinosaurs")
        app.make_it_so(world_id, "explode")
        projection = loaded()
        try:
            with self.assertRaises(ValueError):
                projection.catch_up()
            self.assertEqual(projection.position(), 2)
        finally:
            projection.close()
        self.assertEqual(summaries(), {world_id: (1, "dinosaurs")})

    def test_an_event_already_tracked_is_a_no_op(self) -> None:
        view = WorldSummaryView("WorldSummary")
        view.create_table()
        world_id = Universe(env=ENV).create_world()
        view.world_created(world_id, tracking=Tracking("Universe", 1))
        self.assertIsNone(
            view.world_created(world_id, tracking=Tracking("Universe", 1))
        )
        view.something_happened(world_id, "trucks", tracking=Tracking("Universe", 2))
        view.something_happened(world_id, "trucks", tracking=Tracking("Universe", 2))
        self.assertEqual(summaries(), {world_id: (1, "trucks")})
        self.assertEqual(view.max_tracking_id("Universe"), 2)

    def test_rebuild_gives_the_rows_of_the_live_projection(self) -> None:
        app = Universe(env=ENV)
        write_worlds(app, worlds=20, things_each=4)
        call_command("run_projections", "WorldSummary", "--catch-up-only", verbosity=0)
        live = summaries()
        self.assertEqual(len(live), 20)
        # Something the events do not say, to see the rebuild remove it.
        WorldSummary.objects.filter(pk=next(iter(live))).update(history_length=99)

        out = StringIO()
        call_command("rebuild_projection", "WorldSummary", stdout=out)
        self.assertIn("Rebuilt WorldSummary: 100 events replayed.", out.getvalue())
        self.assertEqual(summaries(), live)
        self.assertEqual(position(), 100)

    def test_rebuild_into_fresh_tables_leaves_the_old_rows_readable_until_the_swap(
        self,
    ) -> None:
        app = Universe(env=ENV)
        world_ids = write_worlds(app, worlds=20, things_each=4)
        call_command("run_projections", "WorldSummary", "--catch-up-only", verbosity=0)
        live = summaries()
        # Something the events do not say, to tell the old rows from the new.
        stale = next(iter(live))
        WorldSummary.objects.filter(pk=stale).update(history_length=99)

        projection = loaded()
        try:
            rebuild = SwapRebuild(projection)
            self.assertEqual(rebuild.build(), 100)
            # Built, not swapped: readers see the old rows, and the position.
            self.assertEqual(summaries()[stale][0], 99)
            self.assertEqual(len(summaries()), 20)
            self.assertEqual(position(), 100)
            rebuild.swap()
        finally:
            projection.close()
        self.assertEqual(summaries(), live)
        self.assertEqual(position(), 100)
        # The swapped-in tables are followed from there on.
        more = write_worlds(app, worlds=2, things_each=1)
        call_command("run_projections", "WorldSummary", "--catch-up-only", verbosity=0)
        self.assert_summaries_match(app, world_ids + more)

    def test_rebuild_swap_by_the_command_and_again(self) -> None:
        app = Universe(env=ENV)
        world_ids = write_worlds(app, worlds=10, things_each=4)
        for _ in range(2):  # the second swap's tables are named anew
            out = StringIO()
            call_command("rebuild_projection", "WorldSummary", "--swap", stdout=out)
            self.assertIn(
                "Rebuilt WorldSummary: 50 events replayed into fresh tables, "
                "swapped in.",
                out.getvalue(),
            )
            self.assert_summaries_match(app, world_ids)
            self.assertEqual(position(), 50)

    def test_a_failed_swap_rebuild_leaves_the_live_tables_as_they_were(self) -> None:
        app = Universe(env=ENV)
        world_id = app.create_world()
        app.make_it_so(world_id, "dinosaurs")
        call_command("run_projections", "WorldSummary", "--catch-up-only", verbosity=0)
        app.make_it_so(world_id, "explode")
        with self.assertRaises(ValueError):
            call_command(
                "rebuild_projection", "WorldSummary", "--swap", stdout=StringIO()
            )
        self.assertEqual(summaries(), {world_id: (1, "dinosaurs")})
        self.assertEqual(position(), 2)

    def test_rebuild_refuses_while_a_worker_is_alive_unless_forced(self) -> None:
        app = Universe(env=ENV)
        write_worlds(app, worlds=2, things_each=1)
        worker = start_worker()
        try:
            wait_until(lambda: position() == 4)
            with self.assertRaises(CommandError) as info:
                call_command("rebuild_projection", "WorldSummary")
            self.assertIn(f"already run by process {worker.pid}", str(info.exception))
            call_command("rebuild_projection", "WorldSummary", "--force", verbosity=0)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=30)
        self.assertEqual(len(summaries()), 2)

    def test_a_django_view_and_the_admin_read_the_projection(self) -> None:
        app = Universe(env=ENV)
        (world_id,) = write_worlds(app, worlds=1, things_each=2)
        call_command("run_projections", "WorldSummary", "--catch-up-only", verbosity=0)
        response = self.client.get("/worlds/")
        self.assertEqual(
            response.json(),
            {
                "worlds": [
                    {
                        "world_id": str(world_id),
                        "history_length": 2,
                        "last_what": "thing 1",
                    }
                ]
            },
        )
        User.objects.create_superuser("admin", "admin@example.com", "pw")
        self.client.login(username="admin", password="pw")
        response = self.client.get("/admin/testapp/worldsummary/")
        self.assertContains(response, str(world_id))

    def test_an_event_sourced_projection_is_rebuilt_from_scratch(self) -> None:
        app = Universe(env=ENV)
        write_worlds(app, worlds=3, things_each=2)
        call_command("run_projections", "Counters", "--catch-up-only", verbosity=0)

        def counts() -> tuple[int, int, int]:
            projection = LoadedProjection(projection_specs(["Counters"])[0])
            try:
                counters: Any = projection.projection
                return (
                    counters.get_count(World.Created),
                    counters.get_count(World.SomethingHappened),
                    counters.recorder.max_notification_id(),
                )
            finally:
                projection.close()

        live = counts()
        self.assertEqual(live[:2], (3, 6))
        call_command("rebuild_projection", "Counters", verbosity=0)
        # The same state, its own log renumbered from 1 as when it first ran.
        self.assertEqual(counts(), live)

    def test_unknown_projection_names_are_refused(self) -> None:
        with self.assertRaises(CommandError) as info:
            call_command("run_projections", "Nope")
        self.assertIn("Unknown projection(s): Nope", str(info.exception))
        self.assertIn("WorldSummary", str(info.exception))

    def test_a_max_outage_of_no_time_is_refused(self) -> None:
        with self.assertRaises(CommandError) as info:
            call_command("run_projections", "WorldSummary", "--max-outage=0")
        self.assertIn(
            "--max-outage must be a number of seconds above 0", str(info.exception)
        )


class TestSystemRunners(DjangoDBTestCase):
    def check_runner(self, runner: Any) -> None:
        runner.start()
        try:
            universe = runner.get(Universe)
            write_worlds(universe, worlds=5, things_each=1)
            counter = runner.get(WorldCounter)
            last = universe.recorder.max_notification_id()
            wait_until(
                lambda: counter.recorder.max_tracking_id("Universe") == last, timeout=10
            )
            self.assertEqual(counter.count(), 5)
        finally:
            runner.stop()

    def test_single_threaded_runner(self) -> None:
        self.check_runner(SingleThreadedRunner(system, env=ENV))

    def test_multi_threaded_runner(self) -> None:
        self.check_runner(MultiThreadedRunner(system, env=ENV))


@override_settings(EVENTSOURCING_RUNNER="tests.testapp.system.get_runner")
class TestSyncFollowers(DjangoDBTestCase):
    def setUp(self) -> None:
        self.runner = SingleThreadedRunner(system, env=ENV)
        self.runner.start()
        system_module.runner = self.runner
        # Events the follower was not told about (written by another process).
        write_worlds(Universe(env=ENV), worlds=3, things_each=1)

    def tearDown(self) -> None:
        system_module.runner = None
        self.runner.stop()

    def test_catches_followers_up(self) -> None:
        counter = self.runner.get(WorldCounter)
        self.assertEqual(counter.count(), 0)
        out = StringIO()
        call_command("sync_followers", verbosity=2, stdout=out)
        self.assertEqual(counter.count(), 3)
        self.assertIn("WorldCounter... OK", out.getvalue())
        self.assertIn("6 events from Universe", out.getvalue())

    def test_dry_run_rolls_back(self) -> None:
        call_command("sync_followers", "--dry-run", verbosity=0)
        self.assertEqual(self.runner.get(WorldCounter).count(), 0)

    def test_unknown_follower_is_refused(self) -> None:
        with self.assertRaises(CommandError) as info:
            call_command("sync_followers", "Nobody")
        self.assertIn("Unknown followers: Nobody", str(info.exception))
        self.assertIn("WorldCounter", str(info.exception))
