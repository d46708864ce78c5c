"""Projections of an application's events into ordinary Django models.

A view is a :class:`DjangoProjectionView`: a tracking recorder whose methods,
decorated with :func:`tracked`, update the user's own models and record how far
they have read in the same database transaction. A crash between the two can
neither skip nor repeat an event, and an event already tracked is a no-op.

Projections are declared in the ``EVENTSOURCING_PROJECTIONS`` setting and run by
``manage.py run_projections`` (catch up, then follow) and rebuilt by
``manage.py rebuild_projection``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Concatenate, ParamSpec, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models, transaction
from django.utils import timezone
from eventsourcing.application import Application
from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.projection import (
    ApplicationSubscription,
    EventSourcedProjection,
    Projection,
)
from eventsourcing.utils import Environment, resolve_topic

from eventsourcing_django.applications import (
    ApplicationDeclaration,
    declaration,
    declarations,
)
from eventsourcing_django.errors import (
    ConnectionLostError,
    DatabaseUnavailableError,
    require_installed,
)
from eventsourcing_django.recorders import (
    DjangoApplicationRecorder,
    DjangoRecorder,
    DjangoTrackingRecorder,
)
from eventsourcing_django.retry import reconnecting
from eventsourcing_django.tenants import use_schema

if TYPE_CHECKING:
    from eventsourcing_django.models import ProjectionWorker

logger = logging.getLogger("eventsourcing_django.projections")

PROJECTIONS_SETTING = "EVENTSOURCING_PROJECTIONS"

P = ParamSpec("P")
R = TypeVar("R")
V = TypeVar("V", bound="DjangoProjectionView")


class _AlreadyTracked(Exception):
    """Rolls back a view method whose event was processed before."""


def tracked(
    method: Callable[Concatenate[V, P], R],
) -> Callable[Concatenate[V, P], R | None]:
    """Run a view method and record its ``tracking`` argument in one transaction.

    The tracking row is written first: if the event was already tracked (a
    repeat after a restart, or another worker got there first) nothing is
    changed and the method returns None without running its body.
    """
    signature = inspect.signature(method)
    if "tracking" not in signature.parameters:
        msg = f"{method.__qualname__} needs a 'tracking' parameter to be @tracked"
        raise TypeError(msg)

    @functools.wraps(method)
    def wrapper(self: V, /, *args: P.args, **kwargs: P.kwargs) -> R | None:
        tracking = signature.bind(self, *args, **kwargs).arguments["tracking"]
        if not isinstance(tracking, Tracking):
            msg = f"'tracking' must be a Tracking object, got {tracking!r}"
            raise TypeError(msg)
        try:
            with (
                use_schema(self.connection, self.schema),
                self.tracking_transaction() as cursor,
            ):
                try:
                    self._insert_tracking(cursor, tracking)
                except IntegrityError:
                    raise _AlreadyTracked from None
                return method(self, *args, **kwargs)
        except _AlreadyTracked:
            return None

    return wrapper


class DjangoProjectionView(DjangoTrackingRecorder):
    """Base class of views kept in the user's own Django models.

    Write the models with ``Model.objects.using(self.using)`` inside methods
    decorated with :func:`tracked`: the models must live on the view's alias
    (``DJANGO_DB_ALIAS`` or the routers' choice for the projection's name) for
    their changes to commit with the tracking. List them in :attr:`models` so
    :meth:`reset` can empty them before a rebuild.
    """

    #: The models this view writes; emptied by :meth:`reset`.
    models: ClassVar[Sequence[type[models.Model]]] = ()

    def reset(self) -> None:
        """Delete the view's rows and its tracking, together."""
        with (
            use_schema(self.connection, self.schema),
            self.tracking_transaction() as cursor,
        ):
            for model in self.models:
                model._default_manager.using(self.using).all().delete()
            cursor.execute(self.dialect.delete_tracking_statement(self.tracking_table))


# Declaring and loading projections ---------------------------------------------


@dataclass(frozen=True)
class ProjectionSpec:
    """One entry of ``settings.EVENTSOURCING_PROJECTIONS``.

    Its ``application`` is the name of an application declared in
    ``settings.EVENTSOURCING_APPLICATIONS`` (or, as before declarations, a class
    topic: the class is then built with the projection's ``env``, unless its
    name is declared).
    """

    name: str
    application: str
    projection_class: type[Projection[Any]] | type[EventSourcedProjection[Any]]
    view_class: type[TrackingRecorder] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_setting(cls, name: str, entry: dict[str, Any]) -> ProjectionSpec:
        where = f"settings.{PROJECTIONS_SETTING}[{name!r}]"

        def load(key: str) -> Any:
            try:
                return resolve_topic(entry[key])
            except KeyError:
                msg = f"{where} has no {key!r}"
                raise ImproperlyConfigured(msg) from None
            except Exception as e:
                msg = f"{where}[{key!r}] = {entry[key]!r} cannot be imported: {e}"
                raise ImproperlyConfigured(msg) from e

        if not isinstance(entry, dict):
            msg = f"{where} must be a dict with 'application' and 'projection'"
            raise ImproperlyConfigured(msg)
        application = entry.get("application")
        if not isinstance(application, str) or not application:
            msg = (
                f"{where}['application'] must name an application declared in "
                f"settings.EVENTSOURCING_APPLICATIONS, got {application!r}"
            )
            raise ImproperlyConfigured(msg)
        projection_class = load("projection")
        is_event_sourced = isinstance(projection_class, type) and issubclass(
            projection_class, EventSourcedProjection
        )
        if not is_event_sourced and not (
            isinstance(projection_class, type)
            and issubclass(projection_class, Projection)
        ):
            msg = (
                f"{where}['projection'] must be a Projection or "
                "EventSourcedProjection class"
            )
            raise ImproperlyConfigured(msg)
        view_class = None
        if not is_event_sourced:
            view_class = load("view")
            if not (
                isinstance(view_class, type)
                and issubclass(view_class, TrackingRecorder)
            ):
                msg = (
                    f"{where}['view'] must be a TrackingRecorder class, such as a "
                    "subclass of eventsourcing_django.projections.DjangoProjectionView"
                )
                raise ImproperlyConfigured(msg)
        elif "view" in entry:
            msg = (
                f"{where}: an EventSourcedProjection keeps its own state, it takes "
                "no 'view'"
            )
            raise ImproperlyConfigured(msg)
        return cls(
            name=name,
            application=application,
            projection_class=projection_class,
            view_class=view_class,
            env={str(k): str(v) for k, v in entry.get("env", {}).items()},
        )

    @property
    def is_topic(self) -> bool:
        return ":" in self.application

    def application_declaration(self) -> ApplicationDeclaration | None:
        """The declaration of the projection's application, if it has one."""
        if not self.is_topic:
            return declaration(self.application)
        name = getattr(self.application_class(), "name", None)
        return declarations().get(name) if isinstance(name, str) else None

    def application_class(self) -> type[Application[Any]]:
        if not self.is_topic:
            return declaration(self.application).application_class()
        try:
            cls = resolve_topic(self.application)
        except Exception as e:
            msg = (
                f"settings.{PROJECTIONS_SETTING}[{self.name!r}]['application'] = "
                f"{self.application!r} cannot be imported: {e}"
            )
            raise ImproperlyConfigured(msg) from e
        if not (isinstance(cls, type) and issubclass(cls, Application)):
            msg = (
                f"settings.{PROJECTIONS_SETTING}[{self.name!r}]['application'] = "
                f"{self.application!r} is not an Application class"
            )
            raise ImproperlyConfigured(msg)
        return cls

    def build_application(self) -> Application[Any]:
        """A new instance of the projection's application, as declared."""
        decl = self.application_declaration()
        if decl is not None:
            return decl.build()
        return self.application_class()(env=self.environment())

    def environment(self) -> dict[str, str]:
        """The projection's env: our persistence module, os.environ, the setting's."""
        env = {"PERSISTENCE_MODULE": "eventsourcing_django"}
        env.update(os.environ)
        env.update(self.env)
        return env


def projection_specs(names: Sequence[str] = ()) -> list[ProjectionSpec]:
    """The projections declared in settings, all or those named."""
    declared: dict[str, dict[str, Any]] = getattr(settings, PROJECTIONS_SETTING, {})
    unknown = [n for n in names if n not in declared]
    if unknown:
        known = ", ".join(declared) or "none"
        msg = (
            f"Unknown projection(s): {', '.join(unknown)}. "
            f"EVENTSOURCING_PROJECTIONS declares: {known}"
        )
        raise ImproperlyConfigured(msg)
    return [ProjectionSpec.from_setting(n, declared[n]) for n in names or declared]


class LoadedProjection:
    """An application, a projection of it, and where its tracking is kept."""

    def __init__(self, spec: ProjectionSpec) -> None:
        self.spec = spec
        self.app = spec.build_application()
        projection_class: Any = spec.projection_class
        if spec.view_class is None:
            self.projection = projection_class(env=spec.environment())
            self.tracking_recorder: TrackingRecorder = self.projection.recorder
        else:
            env = Environment(projection_class.name, spec.environment())
            factory = InfrastructureFactory.construct(env)
            self.tracking_recorder = factory.tracking_recorder(spec.view_class)
            self.projection = projection_class(view=self.tracking_recorder)
        if not isinstance(self.tracking_recorder, DjangoRecorder):
            msg = (
                f"Projection {spec.name!r} keeps its tracking in "
                f"{type(self.tracking_recorder).__qualname__}, not in Django; set "
                "PERSISTENCE_MODULE=eventsourcing_django in its env"
            )
            raise ImproperlyConfigured(msg)
        self.topics: Sequence[str] = tuple(getattr(projection_class, "topics", ()))

    @property
    def using(self) -> str:
        return self.tracking_recorder.using  # type: ignore[attr-defined, no-any-return]

    def position(self) -> int:
        return self.tracking_recorder.max_tracking_id(self.app.name) or 0

    def end(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def process(self, domain_event: Any, tracking: Tracking) -> None:
        self.projection.process_event(domain_event, tracking)

    def catch_up(
        self,
        stop: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
        page_size: int = 500,
    ) -> int:
        """Process every event recorded so far; return how many were processed.

        ``progress`` is told the start, each event's position, and the end
        ``(end, end)`` only if it got there: stopped first, the last position it
        was told is where it stopped.
        """
        position, end = self.position(), self.end()
        if progress:
            progress(position, end)
        processed = 0
        stopped = False
        while position < end and not stopped:
            notifications = self.app.recorder.select_notifications(
                start=position,
                limit=page_size,
                stop=end,
                topics=self.topics,
                inclusive_of_start=False,
            )
            if not notifications:
                break
            for notification in notifications:
                stopped = stop is not None and stop.is_set()
                if stopped:
                    break
                domain_event = self.app.mapper.to_domain_event(notification)
                self.process(domain_event, Tracking(self.app.name, notification.id))
                position = notification.id
                processed += 1
                if progress:
                    progress(position, end)
            else:
                # Past the last page's events the topics filter left out.
                position = notifications[-1].id
        if progress and not stopped:
            progress(end, end)
        return processed

    def follow(self) -> ApplicationSubscription[Any]:
        """A subscription to the events after the tracked position."""
        return ApplicationSubscription(self.app, gt=self.position(), topics=self.topics)

    def reset(self) -> None:
        """Empty the projection's state and tracking, to replay it from the start."""
        recorder = self.tracking_recorder
        if isinstance(recorder, DjangoApplicationRecorder):
            # An event-sourced projection: its own events, snapshots and tracking.
            from eventsourcing_django.ddl import truncate_table

            tables = recorder.tables
            with transaction.atomic(using=recorder.using):
                for table in (tables.events, tables.snapshots):
                    truncate_table(recorder.using, recorder.dialect, table)
                with connections[recorder.using].cursor() as cursor:
                    cursor.execute(
                        recorder.dialect.delete_tracking_statement(tables.tracking)
                    )
            # A fresh instance: the old one may cache aggregates that are gone.
            self.projection.close()
            self.projection = type(self.projection)(env=self.spec.environment())
            self.tracking_recorder = self.projection.recorder
        elif isinstance(recorder, DjangoProjectionView):
            recorder.reset()
        else:
            msg = (
                f"{type(recorder).__qualname__} has no reset(): subclass "
                "DjangoProjectionView and list its models, or define reset()"
            )
            raise ImproperlyConfigured(msg)

    def close(self) -> None:
        self.app.close()
        close = getattr(self.projection, "close", None)
        if close is not None:
            close()


# Workers -----------------------------------------------------------------------

#: Seconds between a worker's heartbeats; a worker is presumed dead after three.
HEARTBEAT_INTERVAL = 5.0


def _this_host() -> str:
    return socket.gethostname()


def _pid_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_model() -> type[ProjectionWorker]:
    """The model of workers' heartbeats, or the fix when its app is not installed."""
    require_installed("Running projections (their workers' heartbeats)")
    from eventsourcing_django.models import ProjectionWorker

    return ProjectionWorker


def live_worker(name: str, using: str) -> Any:
    """The worker that is running projection ``name``, if any."""
    worker = worker_model().objects.using(using).filter(name=name).first()
    if worker is None or not worker_is_alive(worker):
        return None
    return worker


def worker_is_alive(worker: Any) -> bool:
    """Whether a worker's row belongs to a live process: a recent heartbeat, and
    (on this host) a process that still exists."""
    stale_after = timedelta(seconds=3 * worker.heartbeat_interval)
    if timezone.now() - worker.heartbeat_at > stale_after:
        return False
    return not (worker.host == _this_host() and not _pid_is_alive(worker.pid))


@dataclass
class WorkerRegistration:
    """The rows that say this process runs some projections."""

    names_and_aliases: list[tuple[str, str]]
    interval: float = HEARTBEAT_INTERVAL
    pid: int = field(default_factory=os.getpid)

    def claim(self, *, force: bool = False) -> None:
        model = worker_model()
        for name, using in self.names_and_aliases:
            with transaction.atomic(using=using):
                other = live_worker(name, using)
                if other is not None and not force and other.pid != self.pid:
                    msg = (
                        f"Projection {name!r} is already run by process {other.pid} "
                        f"on {other.host} (last heartbeat {other.heartbeat_at:%c}); "
                        "stop it first, or use --force"
                    )
                    raise WorkerAliveError(msg)
                model.objects.using(using).update_or_create(
                    name=name,
                    defaults={
                        "pid": self.pid,
                        "host": _this_host(),
                        "heartbeat_at": timezone.now(),
                        "heartbeat_interval": self.interval,
                    },
                )

    def beat(self) -> None:
        """Renew the heartbeats; raises ConnectionLostError or
        DatabaseUnavailableError while the database is away."""
        model = worker_model()
        for name, using in self.names_and_aliases:
            with reconnecting(connections[using]):
                model.objects.using(using).filter(name=name, pid=self.pid).update(
                    heartbeat_at=timezone.now()
                )

    def release(self) -> None:
        """Remove the registrations, if the database can be reached: a worker
        that could not is taken for dead after three missed heartbeats."""
        model = worker_model()
        for name, using in self.names_and_aliases:
            try:
                with reconnecting(connections[using]):
                    model.objects.using(using).filter(name=name, pid=self.pid).delete()
            except (ConnectionLostError, DatabaseUnavailableError) as e:
                logger.warning(
                    "%s: could not remove the worker's registration (%s); it "
                    "lapses after three missed heartbeats",
                    name,
                    e,
                )


class WorkerAliveError(Exception):
    """A projection is already being run by a live worker."""
