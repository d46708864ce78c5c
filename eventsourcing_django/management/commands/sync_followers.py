"""``manage.py sync_followers``: catch the followers of a system up with their
leaders, in one transaction per database alias."""

from __future__ import annotations

import importlib
from collections import defaultdict
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from eventsourcing.domain import EventSourcingError
from eventsourcing.system import Follower, Runner, SingleThreadedRunner, System

from eventsourcing_django.applications import runner_env


class _RollBack(Exception):
    """Ends a dry run's transaction."""


def find_runner() -> Runner[Any]:
    """The system runner (see :func:`_find_runner`)."""
    return _find_runner()[0]


def _find_runner() -> tuple[Runner[Any], bool]:
    """The system runner, and whether it was started here (to be stopped):
    ``settings.EVENTSOURCING_RUNNER``, or the only one
    found as an attribute of an installed app's ``AppConfig``.

    The setting may also name a ``System``: it is then run by a new, started
    ``SingleThreadedRunner`` whose applications are built from their
    declarations (see :func:`eventsourcing_django.applications.runner_env`).
    """
    path = getattr(settings, "EVENTSOURCING_RUNNER", None)
    if path is not None:
        runner = _runner_from_setting(path)
        if isinstance(runner, System):
            runner = SingleThreadedRunner(runner, env=runner_env(runner))
            runner.start()
            return runner, True
        if not isinstance(runner, Runner):
            msg = (
                f"settings.EVENTSOURCING_RUNNER = {path!r} does not give a Runner: "
                "use '<app label>.<attribute>' of an AppConfig, "
                "'<module>.<function>' of a function that returns the runner, or "
                "'<module>.<attribute>' of a System"
            )
            raise CommandError(msg)
        return runner, False
    found = [
        value
        for config in apps.get_app_configs()
        for attribute, value in vars(config).items()
        if not attribute.startswith("_") and isinstance(value, Runner)
    ]
    if len(found) != 1:
        msg = (
            f"Found {len(found)} runners on the installed apps' AppConfigs, expected "
            "one: set settings.EVENTSOURCING_RUNNER"
        )
        raise CommandError(msg)
    return found[0], False


def _runner_from_setting(path: str) -> Any:
    owner, _, attribute = path.rpartition(".")
    try:
        config = apps.get_app_config(owner)
    except LookupError:
        try:
            module = importlib.import_module(owner)
        except ImportError:
            return None
        value = getattr(module, attribute, None)
        if isinstance(value, System):
            return value
        return value() if callable(value) else None
    return getattr(config, attribute, None)


class Command(BaseCommand):
    help = "Catch followers up with the events of the applications they follow."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "followers",
            metavar="follower",
            nargs="*",
            help="Followers to synchronize (default: all).",
        )
        parser.add_argument(
            "-n",
            "--dry-run",
            action="store_true",
            help="Process the events, then roll back every change.",
        )

    def handle(self, *args: str, **options: Any) -> None:
        names: list[str] = options["followers"]
        verbosity: int = options["verbosity"]
        dry_run: bool = options["dry_run"]
        runner, started_here = _find_runner()
        try:
            self._sync_all(runner, names, verbosity, dry_run)
        finally:
            if started_here:
                runner.stop()

    def _sync_all(
        self, runner: Runner[Any], names: list[str], verbosity: int, dry_run: bool
    ) -> None:
        system = runner.system
        unknown = sorted(set(names) - set(system.followers))
        if unknown:
            msg = (
                f"Unknown followers: {', '.join(unknown)}. "
                f"The followers are: {', '.join(system.followers)}"
            )
            raise CommandError(msg)
        selected = list(names) or system.followers
        if dry_run and verbosity:
            self.stdout.write(
                self.style.WARNING("Dry run: every change will be rolled back.")
            )
        if verbosity:
            self.stdout.write(
                self.style.MIGRATE_HEADING(
                    f"Synchronizing {len(selected)} of {len(system.followers)} "
                    "followers."
                )
            )
        # One transaction per alias: transaction.atomic() covers one alias only.
        by_alias: dict[str, list[Follower[Any]]] = defaultdict(list)
        for name in selected:
            follower = runner.get(system.follower_cls(name))
            by_alias[getattr(follower.recorder, "using", "default")].append(follower)

        failures = 0
        for alias, followers in by_alias.items():
            try:
                with transaction.atomic(using=alias):
                    for follower in followers:
                        failures += self._sync(follower, system.follows[follower.name])
                    if dry_run:
                        raise _RollBack
            except _RollBack:
                pass
        if failures:
            msg = f"{failures} follower(s) failed to synchronize" + (
                "" if verbosity > 1 else " (run with --verbosity 2 for details)"
            )
            raise CommandError(msg)

    def _sync(self, follower: Follower[Any], leaders: list[str]) -> int:
        verbosity: int = self.verbosity
        if verbosity:
            self.stdout.write(f"  {follower.name}...", ending=" ")
        counts: dict[str, int] = {}
        try:
            with transaction.atomic(using=getattr(follower.recorder, "using", None)):
                for leader in leaders:
                    start = follower.recorder.max_tracking_id(leader)
                    counts[leader] = sum(
                        len(batch)
                        for batch in follower.pull_notifications(
                            leader, start=start, inclusive_of_start=False
                        )
                    )
                    follower.pull_and_process(leader, start=start)
        except (EventSourcingError, ObjectDoesNotExist) as e:
            if verbosity:
                self.stdout.write(self.style.ERROR("FAILED"))
            if verbosity > 1:
                self.stderr.write(f"    {type(e).__name__}: {e}")
            return 1
        if verbosity:
            self.stdout.write(self.style.SUCCESS("OK"))
        if verbosity > 1:
            for leader, count in counts.items():
                self.stdout.write(f"    {count} events from {leader}")
        return 0

    def execute(self, *args: Any, **options: Any) -> Any:
        self.verbosity = options.get("verbosity", 1)
        return super().execute(*args, **options)
