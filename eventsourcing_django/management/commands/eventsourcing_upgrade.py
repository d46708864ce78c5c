"""``manage.py eventsourcing_upgrade``: move applications out of 0.x's shared tables.

Copies each application's events, snapshots and followers' positions from the
tables of eventsourcing-django 0.x (``stored_events``, ``snapshots``,
``notification_tracking``, on ``--database``) into its own tables, on the alias and
in the schema the routers and settings give it; verifies each copy; with
``--drop-legacy``, then drops the shared tables. Run again after a failure, it goes
on where it stopped. The work is done by :mod:`eventsourcing_django.upgrade`.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    OutputWrapper,
)
from django.db import DatabaseError
from tqdm import tqdm

from eventsourcing_django.legacy import TABLES
from eventsourcing_django.upgrade import (
    DEFAULT_BATCH_SIZE,
    ApplicationCopy,
    Plan,
    UpgradeError,
    drop_legacy_tables,
    plan_upgrade,
)


class _BarStream:
    """The command's stderr as tqdm writes to it: no line ending added."""

    def __init__(self, out: OutputWrapper) -> None:
        self.out = out

    def write(self, text: str) -> None:
        self.out.write(text, style_func=str, ending="")

    def flush(self) -> None:
        self.out.flush()


class Command(BaseCommand):
    help = (
        "Copies eventsourcing applications from the shared tables of "
        "eventsourcing-django 0.x into their own tables, and verifies the copies."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "application_names",
            nargs="*",
            metavar="APPLICATION",
            help="Application names as in the shared tables (default: all there).",
        )
        parser.add_argument(
            "--database",
            default="default",
            help="The database of the shared tables. Defaults to 'default'.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Show what would be copied, and where, without writing anything.",
        )
        parser.add_argument(
            "--drop-legacy",
            action="store_true",
            help=(
                "Drop the shared tables once every application in them is copied "
                "and verified."
            ),
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Rows copied per transaction (default {DEFAULT_BATCH_SIZE}).",
        )
        parser.add_argument(
            "--commit-each-batch",
            action="store_true",
            help=(
                "Commit every batch, so that a run after a crash goes on from the "
                "last one. Without it, on PostgreSQL, an empty events table is "
                "filled in one transaction and its indexes built after the rows "
                "(faster; a crash undoes the whole copy of that table)."
            ),
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Drop the shared tables without asking for confirmation.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity: int = options["verbosity"]
        try:
            plan = plan_upgrade(
                options["database"],
                options["application_names"],
                batch_size=options["batch_size"],
                commit_each_batch=options["commit_each_batch"],
            )
        except UpgradeError as e:
            raise CommandError(str(e)) from e
        for skipped in plan.skipped:
            self.stderr.write(
                self.style.WARNING(
                    f"Skipped application {skipped.name!r}: {skipped.reason}. "
                    "Its rows stay in the shared tables."
                )
            )
        if options["dry_run"]:
            self._dry_run(plan, options["drop_legacy"])
            return
        if options["drop_legacy"]:
            self._check_drop(plan)
            if options["interactive"] and not self._confirm_drop(plan):
                raise CommandError("Nothing copied, nothing dropped.")
        verified = [self._upgrade(copy) for copy in plan.copies]
        if options["drop_legacy"]:
            try:
                dropped = drop_legacy_tables(plan, verified)
            except UpgradeError as e:
                raise CommandError(str(e)) from e
            self.stdout.write(
                self.style.SUCCESS(
                    f"Dropped {', '.join(map(repr, dropped))} from database "
                    f"{plan.alias!r}."
                )
            )

    def _upgrade(self, copy: ApplicationCopy) -> str:
        application = copy.application
        done = copy.copied()
        remaining = application.events - done.events
        remaining += application.snapshots - done.snapshots
        if self.verbosity >= 1:
            before = "" if remaining else "; copied before"
            self.stdout.write(
                self.style.MIGRATE_HEADING(
                    f"Upgrading {copy.name} ({application.events} events, "
                    f"{application.snapshots} snapshots{before}) to {copy.where}"
                )
            )
        try:
            with tqdm(
                total=max(remaining, 0),
                desc=copy.name,
                unit=" rows",
                mininterval=0.5,
                file=_BarStream(self.stderr),
                disable=self.verbosity < 1 or remaining <= 0,
            ) as bar:
                summary = copy.run(bar.update)
        except UpgradeError as e:
            raise CommandError(str(e)) from e
        except DatabaseError as e:
            msg = (
                f"Copying application {copy.name!r} to {copy.where} failed: {e}. "
                "What was copied is kept: run the upgrade again to go on."
            )
            raise CommandError(msg) from e
        if self.verbosity >= 1:
            self.stdout.write(self.style.SUCCESS(f"  Verified: {summary}."))
        return copy.name

    def _dry_run(self, plan: Plan, drop_legacy: bool) -> None:
        for copy in plan.copies:
            application, done = copy.application, copy.copied()
            tables = ", ".join(table for _, table in copy.kinds)
            positions = len(application.positions)
            self.stdout.write(
                f"{copy.name}: would copy "
                f"{application.events - done.events} of {application.events} "
                f"events, {application.snapshots - done.snapshots} of "
                f"{application.snapshots} snapshots and "
                f"{positions - done.positions} of {positions} tracking positions "
                f"to {tables} on {copy.where}."
            )
        if drop_legacy:
            try:
                self._check_drop(plan)
            except CommandError as e:
                self.stdout.write(str(e))
            else:
                tables = ", ".join(t for t in TABLES if t in plan.present)
                self.stdout.write(
                    f"Would then drop {tables} from database {plan.alias!r}."
                )

    def _check_drop(self, plan: Plan) -> None:
        """Refuse --drop-legacy before copying, when it could not be done after."""
        chosen = {copy.name for copy in plan.copies}
        left = [name for name in plan.found if name not in chosen]
        if left:
            msg = (
                "--drop-legacy would lose the rows of applications this run does "
                f"not copy: {', '.join(map(repr, left))}. Upgrade every "
                "application (name none, and make the names of skipped ones "
                "safe first), or leave out --drop-legacy."
            )
            raise CommandError(msg)

    def _confirm_drop(self, plan: Plan) -> bool:
        tables = ", ".join(t for t in TABLES if t in plan.present)
        answer = input(
            f"After copying and verifying every application, {tables} will be "
            f"dropped from database {plan.alias!r}.\n"
            "Type 'yes' to continue, or 'no' to cancel: "
        )
        return answer == "yes"
