"""``manage.py eventsourcing_status``: the event store and its projections, for
people and for health checks.

Prints each declared application (alias, schema, tables, head of its
notification log) and each declared projection (position, head, lag, worker),
as a table or as JSON (``--json``). Exits with status 1 when a projection's lag
exceeds ``--max-lag``, its worker is dead (a registration without a live
process), or its state cannot be read, so it can serve as a health check.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from eventsourcing_django.status import (
    ApplicationStatus,
    ProjectionStatus,
    application_statuses,
    projection_statuses,
)


class Command(BaseCommand):
    help = (
        "Shows the declared applications and projections: notification log "
        "heads, projection positions, lags and workers. Exits with status 1 when "
        "a projection lags more than --max-lag or its worker is dead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="Print the facts as JSON."
        )
        parser.add_argument(
            "--max-lag",
            type=int,
            metavar="N",
            help="Fail when a projection is more than N events behind.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        max_lag: int | None = options["max_lag"]
        if max_lag is not None and max_lag < 0:
            msg = f"--max-lag must be 0 or more, got {max_lag}"
            raise CommandError(msg)
        try:
            applications = application_statuses()
            projections = projection_statuses()
        except ImproperlyConfigured as e:
            raise CommandError(str(e)) from e
        problems = [p for s in projections if (p := self._problem(s, max_lag))]
        if options["json"]:
            report = {
                "applications": [a.as_dict() for a in applications],
                "projections": [p.as_dict() for p in projections],
                "healthy": not problems,
                "problems": problems,
            }
            self.stdout.write(json.dumps(report, indent=2))
        else:
            self._table(applications, projections)
        if problems:
            raise CommandError("Unhealthy: " + "; ".join(problems))

    @staticmethod
    def _problem(status: ProjectionStatus, max_lag: int | None) -> str | None:
        if status.error is not None:
            return f"projection {status.name!r} cannot be read: {status.error}"
        if status.worker_state == "dead":
            assert status.worker is not None
            return (
                f"the worker of projection {status.name!r} (process "
                f"{status.worker.pid} on {status.worker.host}) is dead"
            )
        lag = status.lag
        if max_lag is not None and lag is not None and lag > max_lag:
            return f"projection {status.name!r} lags {lag} events (max {max_lag})"
        return None

    def _table(
        self, applications: list[ApplicationStatus], projections: list[ProjectionStatus]
    ) -> None:
        heading = self.style.MIGRATE_HEADING
        self.stdout.write(heading("Applications"))
        if not applications:
            self.stdout.write(
                "  (none declared in settings.EVENTSOURCING_APPLICATIONS)"
            )
        rows = [["name", "database", "schema", "head", "tables"]]
        for a in applications:
            if a.error:
                rows.append([a.name, "-", "-", "-", self.style.ERROR(a.error)])
                continue
            rows.append(
                [
                    a.name,
                    a.alias or "",
                    a.schema or "-",
                    str(a.head),
                    ", ".join(a.tables),
                ]
            )
        self._rows(rows)
        self.stdout.write(heading("Projections"))
        if not projections:
            self.stdout.write("  (none declared in settings.EVENTSOURCING_PROJECTIONS)")
            return
        rows = [["name", "application", "position", "head", "lag", "worker"]]
        for p in projections:
            if p.error:
                rows.append([p.name, p.application, "-", "-", "-", p.error])
                continue
            rows.append(
                [
                    p.name,
                    p.application,
                    str(p.position),
                    str(p.head),
                    str(p.lag),
                    self._worker(p),
                ]
            )
        self._rows(rows)

    def _worker(self, status: ProjectionStatus) -> str:
        worker = status.worker
        if worker is None:
            return "none"
        ago = (timezone.now() - worker.heartbeat_at).total_seconds()
        state = "alive" if worker.alive else "DEAD"
        return f"{state} (process {worker.pid} on {worker.host}, beat {ago:.0f}s ago)"

    def _rows(self, rows: list[list[str]]) -> None:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
            self.stdout.write("  " + "  ".join(cells).rstrip())
