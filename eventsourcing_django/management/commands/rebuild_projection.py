"""``manage.py rebuild_projection``: reset a projection and replay it."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from eventsourcing_django.progress import (
    Progress,
    catch_up_progress,
    configure_logging,
)
from eventsourcing_django.projections import (
    LoadedProjection,
    ProjectionSpec,
    WorkerAliveError,
    WorkerRegistration,
    projection_specs,
)
from eventsourcing_django.rebuild import SwapRebuild


class Command(BaseCommand):
    help = (
        "Empty a projection (its rows and its tracking) and replay it from the "
        "first event, showing progress. With --swap, replay into fresh tables "
        "and swap them in at the end, the old rows readable until then. Refuses "
        "while a worker runs it, unless --force."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", metavar="projection", nargs="+")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Rebuild even if a worker of the projection seems alive.",
        )
        parser.add_argument(
            "--swap",
            action="store_true",
            help=(
                "Build into fresh tables and swap them in when done, so the old "
                "rows are read until then (PostgreSQL and SQLite)."
            ),
        )

    def handle(self, *args: str, **options: Any) -> None:
        configure_logging(options["verbosity"])
        try:
            specs = projection_specs(options["names"])
        except ImproperlyConfigured as e:
            raise CommandError(str(e)) from e
        with catch_up_progress(self.stdout, [s.name for s in specs]) as progress_for:
            for spec in specs:
                self._rebuild(
                    spec,
                    progress_for(spec.name),
                    force=options["force"],
                    swap=options["swap"],
                )

    def _rebuild(
        self, spec: ProjectionSpec, progress: Progress, *, force: bool, swap: bool
    ) -> None:
        try:
            projection = LoadedProjection(spec)
        except ImproperlyConfigured as e:
            raise CommandError(str(e)) from e
        registration = WorkerRegistration([(spec.name, projection.using)])
        try:
            # Holding the worker row keeps workers from starting meanwhile.
            registration.claim(force=force)
        except (WorkerAliveError, ImproperlyConfigured) as e:
            projection.close()
            raise CommandError(str(e)) from e
        try:
            if swap:
                count = self._build_and_swap(projection, progress)
            else:
                projection.reset()
                try:
                    count = projection.catch_up(progress=progress)
                finally:
                    progress.finish()
        except ImproperlyConfigured as e:
            raise CommandError(str(e)) from e
        finally:
            registration.release()
            projection.close()
        swapped = " into fresh tables, swapped in" if swap else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Rebuilt {spec.name}: {count} events replayed{swapped}."
            )
        )

    def _build_and_swap(self, projection: LoadedProjection, progress: Progress) -> int:
        rebuild = SwapRebuild(projection)
        try:
            try:
                count = rebuild.build(progress=progress)
            finally:
                progress.finish()
        except BaseException:
            # The live tables were not touched; leave nothing of the attempt.
            rebuild.discard()
            raise
        rebuild.swap()
        return count
