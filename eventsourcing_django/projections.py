"""Projections of an application's events into ordinary Django models.

A view is a :class:`DjangoProjectionView`: a tracking recorder whose methods,
decorated with :func:`tracked`, update the user's own models and record how far
they have read in the same database transaction. A crash between the two can
neither skip nor repeat an event, and an event already tracked is a no-op.

Projections are declared in the ``EVENTSOURCING_PROJECTIONS`` setting and run by
``manage.py run_projections`` (catch up, then follow) and rebuilt by
``manage.py rebuild_projection``.

Both apply events in pages: one transaction holds the view's changes for a page
of events and the tracking of its last one (see :meth:`DjangoProjectionView.page`
and docs/decisions.md, "Projections at scale"). A page that fails is applied
again one event at a time, so the failing event is named and those before it
are kept. ``EVENTSOURCING_PROJECTION_BATCH_SIZE`` (events, default 500) and
``EVENTSOURCING_PROJECTION_BATCH_SECONDS`` (default 1.0) bound a page.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
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
    Notification,
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
from eventsourcing_django.conf import count_setting, seconds_setting
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
    from django.db.backends.utils import CursorWrapper

    from eventsourcing_django.models import ProjectionWorker

logger = logging.getLogger("eventsourcing_django.projections")

PROJECTIONS_SETTING = "EVENTSOURCING_PROJECTIONS"
BATCH_SIZE_SETTING = "EVENTSOURCING_PROJECTION_BATCH_SIZE"
BATCH_SECONDS_SETTING = "EVENTSOURCING_PROJECTION_BATCH_SECONDS"
DEFAULT_BATCH_SIZE = 500
DEFAULT_BATCH_SECONDS = 1.0

P = ParamSpec("P")
R = TypeVar("R")
V = TypeVar("V", bound="DjangoProjectionView")


class _AlreadyTracked(Exception):
    """Rolls back a view method whose event was processed before."""


class _NoTrackingRowError(Exception):
    """A page found no tracking row to lock."""


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
        page = self.current_page(tracking.application_name)
        if page is not None:
            # The page's transaction holds the tracking row: no savepoint, and
            # the tracking is written once, for the page's last event.
            if page.has_seen(tracking):
                return None
            return method(self, *args, **kwargs)
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

    def __init__(self, application_name: str, **kwargs: Any) -> None:
        super().__init__(application_name, **kwargs)
        self._pages = threading.local()
        self._lock_tracking_statement = self.dialect.lock_tracking_statement(
            self.tracking_table
        )

    def current_page(self, application_name: str) -> Page | None:
        """The page this thread is applying from ``application_name``, if any."""
        page: Page | None = getattr(self._pages, "page", None)
        if page is None or page.application_name != application_name:
            return None
        return page

    @contextlib.contextmanager
    def page(self, application_name: str) -> Iterator[Page]:
        """One transaction for a page of events from ``application_name``.

        It starts by locking the tracking row (a concurrent page waits, then
        finds its events seen) and ends by advancing it to :attr:`Page.last`.
        Views' :func:`tracked` methods run in it without a transaction of
        their own; an event at or before the locked position is a no-op.
        """
        if getattr(self._pages, "page", None) is not None:
            msg = "Pages do not nest"
            raise RuntimeError(msg)
        with use_schema(self.connection, self.schema), self._write() as cursor:
            cursor.execute(self._lock_tracking_statement, [application_name])
            row = cursor.fetchone()
            page = Page(application_name, None if row is None else row[0], cursor)
            self._pages.page = page
            try:
                yield page
            finally:
                self._pages.page = None
            if page.last is not None and page.last > (page.position or 0):
                self._insert_tracking(cursor, Tracking(application_name, page.last))

    @contextlib.contextmanager
    def tracking_transaction(self) -> Iterator[CursorWrapper]:
        page: Page | None = getattr(self._pages, "page", None)
        if page is not None:
            # Already in the page's transaction: a savepoint per event would
            # cost a round trip or two each, and buy nothing the page lacks.
            yield page.cursor
            return
        with super().tracking_transaction() as cursor:
            yield cursor

    def reset(self) -> None:
        """Delete the view's rows and its tracking, together."""
        with (
            use_schema(self.connection, self.schema),
            self.tracking_transaction() as cursor,
        ):
            for model in self.models:
                model._default_manager.using(self.using).all().delete()
            cursor.execute(self.dialect.delete_tracking_statement(self.tracking_table))


@dataclass
class Page:
    """A page of events being applied in one transaction (see
    :meth:`DjangoProjectionView.page`)."""

    application_name: str
    #: The tracked position when the page began (its row locked), or None.
    position: int | None
    cursor: CursorWrapper
    #: The notification ID the page's tracking is advanced to when it commits.
    last: int | None = None

    @property
    def locked(self) -> bool:
        """Whether a tracking row was there to lock (false before the first
        event is ever tracked: the first event is then applied on its own)."""
        return self.position is not None

    def has_seen(self, tracking: Tracking) -> bool:
        return self.position is not None and tracking.notification_id <= self.position

    def advance(self, notification_id: int) -> None:
        self.last = notification_id


@dataclass(frozen=True)
class BatchPolicy:
    """How many events, and how many seconds at most, one page holds."""

    size: int = DEFAULT_BATCH_SIZE
    seconds: float = DEFAULT_BATCH_SECONDS

    @classmethod
    def from_settings(cls) -> BatchPolicy:
        size = count_setting(
            BATCH_SIZE_SETTING,
            DEFAULT_BATCH_SIZE,
            minimum=1,
            counts="events, 1 or more (1 commits every event on its own)",
        )
        seconds = seconds_setting(
            BATCH_SECONDS_SETTING, DEFAULT_BATCH_SECONDS, zero_allowed=False
        )
        return cls(size=size, seconds=seconds)


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

    def __init__(self, spec: ProjectionSpec, schema: str | None = None) -> None:
        """``schema``: a django-tenants tenant's, to run the projection of its
        application (shared with the process, see tenants.py) into its schema."""
        self.spec = spec
        self._owns_app = schema is None
        if schema is None:
            self.app = spec.build_application()
        else:
            from eventsourcing_django.tenants import get_tenant_application

            self.app = get_tenant_application(spec.application_class(), schema)
        projection_class: Any = spec.projection_class
        environment = spec.environment()
        if schema is not None:
            environment["DJANGO_SCHEMA"] = schema
            environment[f"{projection_class.name.upper()}_DJANGO_SCHEMA"] = schema
            # As for a tenant's application: its tables come from migrations,
            # a missing one is an error to see (see tenants.py).
            environment.setdefault("CREATE_TABLE", "no")
        if spec.view_class is None:
            self.projection = projection_class(env=environment)
            self.tracking_recorder: TrackingRecorder = self.projection.recorder
        else:
            env = Environment(projection_class.name, environment)
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
        #: The name its position is tracked under: the application's, but for
        #: a rebuild into fresh tables (see rebuild.py).
        self.tracking_name: str = self.app.name

    @property
    def using(self) -> str:
        return self.tracking_recorder.using  # type: ignore[attr-defined, no-any-return]

    def position(self) -> int:
        return self.tracking_recorder.max_tracking_id(self.tracking_name) or 0

    def end(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def process(self, domain_event: Any, tracking: Tracking) -> None:
        self.projection.process_event(domain_event, tracking)

    def catch_up(
        self,
        stop: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
        page_size: int | None = None,
        batch: BatchPolicy | None = None,
    ) -> int:
        """Process every event recorded so far; return how many were processed.

        Events are applied in pages (see :meth:`apply`). ``progress`` is told
        the start, the position after each page, and the end ``(end, end)``
        only if it got there: stopped first, the last position it was told is
        where it stopped.
        """
        batch = batch or BatchPolicy.from_settings()
        if page_size is not None:
            batch = BatchPolicy(size=page_size, seconds=batch.seconds)
        position, end = self.position(), self.end()
        if progress:
            progress(position, end)
        processed = 0
        stopped = False
        while position < end and not stopped:
            notifications = self.app.recorder.select_notifications(
                start=position,
                limit=batch.size,
                stop=end,
                topics=self.topics,
                inclusive_of_start=False,
            )
            if not notifications:
                break
            while notifications:
                stopped = stop is not None and stop.is_set()
                if stopped:
                    break
                applied = self.apply(notifications, batch.seconds)
                processed += applied
                position = notifications[applied - 1].id
                notifications = notifications[applied:]
                if progress:
                    progress(position, end)
        if progress and not stopped:
            progress(end, end)
        return processed

    def apply(self, notifications: Sequence[Notification], seconds: float) -> int:
        """Apply the first of ``notifications`` in one transaction; return how
        many (at least one; fewer than all if ``seconds`` ran out).

        A view that is not a :class:`DjangoProjectionView` (an event-sourced
        projection's recorder, for one) gets one transaction per event.
        """
        view = self.tracking_recorder
        if not isinstance(view, DjangoProjectionView) or len(notifications) == 1:
            self.apply_one(notifications[0])
            return 1
        count = 0
        try:
            with view.page(self.tracking_name) as page:
                if not page.locked:
                    # Nothing to lock yet: the first event makes the row.
                    raise _NoTrackingRowError
                count = self._apply_page(page, notifications, seconds)
        except _NoTrackingRowError:
            self.apply_one(notifications[0])
            return 1
        except (ConnectionLostError, DatabaseUnavailableError):
            raise
        except Exception:
            # Rolled back: again one by one, to keep what comes before the
            # failing event and to raise the failing event's error.
            logger.info(
                "%s: a page of %d events failed; applying them one at a time",
                self.spec.name,
                len(notifications),
            )
            for notification in notifications:
                self.apply_one(notification)
            return len(notifications)
        return count

    def _apply_page(
        self, page: Page, notifications: Sequence[Notification], seconds: float
    ) -> int:
        deadline = time.monotonic() + seconds
        process_page = getattr(self.projection, "process_page", None)
        if process_page is not None:
            unseen = [
                n
                for n in notifications
                if not page.has_seen(Tracking(self.tracking_name, n.id))
            ]
            if unseen:
                events = [self.app.mapper.to_domain_event(n) for n in unseen]
                process_page(events, Tracking(self.tracking_name, unseen[-1].id))
            page.advance(notifications[-1].id)
            return len(notifications)
        count = 0
        for notification in notifications:
            tracking = Tracking(self.tracking_name, notification.id)
            if not page.has_seen(tracking):
                domain_event = self.app.mapper.to_domain_event(notification)
                self.process(domain_event, tracking)
            # Also past events the projection ignores: the next page starts after.
            page.advance(notification.id)
            count += 1
            if time.monotonic() > deadline:
                break
        return count

    def apply_one(self, notification: Notification) -> None:
        """Apply one event in a transaction of its own; an error names it."""
        domain_event = self.app.mapper.to_domain_event(notification)
        try:
            self.process(domain_event, Tracking(self.tracking_name, notification.id))
        except Exception as e:
            e.add_note(
                f"while projection {self.spec.name!r} processed notification "
                f"{notification.id} of {self.app.name!r} ({notification.topic})"
            )
            raise

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
        if self._owns_app:
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
