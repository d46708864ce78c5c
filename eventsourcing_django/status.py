"""What is in the event store, and how far behind each projection is.

The facts that the admin's "Event store" pages and ``manage.py
eventsourcing_status`` show: the declared applications (alias, schema, tables,
the head of the notification log), and the declared projections (position, head,
lag, worker). Reading them opens the applications as views do
(:func:`application_instance`); a projection's tracking table is read but never
created here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connections
from eventsourcing.application import Application
from eventsourcing.persistence import PersistenceError
from eventsourcing.utils import Environment

from eventsourcing_django.applications import declarations, get_application
from eventsourcing_django.conf import tenant_schema
from eventsourcing_django.errors import TableMissingError
from eventsourcing_django.projections import (
    ProjectionSpec,
    projection_specs,
    worker_is_alive,
    worker_model,
)
from eventsourcing_django.recorders import DjangoRecorder, DjangoTrackingRecorder


def _tenant_alias() -> str | None:
    """The alias django-tenants manages, if it is in use."""
    if "django_tenants" not in settings.INSTALLED_APPS:
        return None
    from eventsourcing_django.tenants import tenant_alias

    alias = tenant_alias()
    return alias if tenant_schema(connections[alias]) is not None else None


def application_instance(name: str) -> Application[Any]:
    """The instance views use: the current tenant's with django-tenants, else
    the process's one instance."""
    if _tenant_alias() is not None:
        from eventsourcing_django.tenants import get_application as tenant_application

        return tenant_application(name)
    return get_application(name)


@dataclass
class ApplicationStatus:
    name: str
    topic: str
    alias: str | None = None
    schema: str | None = None
    tables: list[str] = field(default_factory=list)
    head: int | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WorkerStatus:
    pid: int
    host: str
    heartbeat_at: datetime
    alive: bool

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "heartbeat_at": self.heartbeat_at.isoformat()}


@dataclass
class ProjectionStatus:
    name: str
    application: str
    position: int | None = None
    head: int | None = None
    worker: WorkerStatus | None = None
    error: str | None = None

    @property
    def lag(self) -> int | None:
        if self.head is None:
            return None
        return self.head - (self.position or 0)

    @property
    def worker_state(self) -> str:
        """'alive', 'dead' (a row without a live process) or 'none'."""
        if self.worker is None:
            return "none"
        return "alive" if self.worker.alive else "dead"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "application": self.application,
            "position": self.position,
            "head": self.head,
            "lag": self.lag,
            "worker": self.worker_state,
            "worker_detail": None if self.worker is None else self.worker.as_dict(),
            "error": self.error,
        }


def application_tables(app: Application[Any]) -> list[str]:
    """The tables of an application's recorders."""
    tables: list[str] = []
    for recorder in (app.recorder, app.snapshots.recorder if app.snapshots else None):
        for attribute in ("table", "tracking_table"):
            table = getattr(recorder, attribute, None)
            if isinstance(table, str) and table not in tables:
                tables.append(table)
    return tables


def application_status(name: str) -> ApplicationStatus:
    decl = declarations()[name]
    status = ApplicationStatus(name=name, topic=decl.topic)
    try:
        app = application_instance(name)
        recorder = app.recorder
        if isinstance(recorder, DjangoRecorder):
            status.alias, status.schema = recorder.using, recorder.schema
        status.tables = application_tables(app)
        status.head = app.recorder.max_notification_id() or 0
    except (PersistenceError, ValueError, LookupError) as e:
        status.error = f"{type(e).__name__}: {e}"
    return status


def application_statuses() -> list[ApplicationStatus]:
    return [application_status(name) for name in declarations()]


def _position(spec: ProjectionSpec, application_name: str) -> tuple[int, str]:
    """The projection's tracked position in the application, and its alias."""
    from eventsourcing_django.factory import Factory

    env = {**spec.environment(), "CREATE_TABLE": "no"}
    factory = Factory(Environment(spec.projection_class.name, env))
    view_class: Any = spec.view_class
    recorder: DjangoTrackingRecorder = factory.tracking_recorder(view_class)
    try:
        position = recorder.max_tracking_id(application_name) or 0
    except TableMissingError:
        # Never run: its tables are made when it first runs (or by a migration).
        position = 0
    return position, recorder.using


def _worker(name: str, using: str) -> WorkerStatus | None:
    row = worker_model().objects.using(using).filter(name=name).first()
    if row is None:
        return None
    return WorkerStatus(
        pid=row.pid,
        host=row.host,
        heartbeat_at=row.heartbeat_at,
        alive=worker_is_alive(row),
    )


def projection_status(spec: ProjectionSpec) -> ProjectionStatus:
    status = ProjectionStatus(name=spec.name, application=spec.application)
    owned: Application[Any] | None = None
    try:
        decl = spec.application_declaration()
        if decl is None:
            # A class topic without a declaration: built as the worker builds it.
            app = owned = spec.build_application()
        else:
            app = application_instance(decl.name)
        status.application = app.name
        status.position, using = _position(spec, app.name)
        status.head = app.recorder.max_notification_id() or 0
        status.worker = _worker(spec.name, using)
    except (PersistenceError, ValueError, LookupError) as e:
        status.error = f"{type(e).__name__}: {e}"
    finally:
        if owned is not None:
            owned.close()
    return status


def projection_statuses() -> list[ProjectionStatus]:
    return [projection_status(spec) for spec in projection_specs()]
