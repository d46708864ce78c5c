"""The admin's read-only "Event store" pages.

The declared applications with their notification logs (paged by notification
ID, never counted), one aggregate's history decoded through its application (so
compressed and encrypted states read as attributes), and the projections with
their lag and workers. Only GET is served; only users with the permission
``eventsourcing_django.view_event_store`` (superusers have it) see the pages.
Under django-tenants, the pages show the current tenant's applications.

The per-application models cannot be registered in the admin (Django refuses
models with a composite primary key), so these are views of their own, hung on
the admin of :class:`~eventsourcing_django.models.EventStore`, a model without a
table that carries the permission.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models.functions import Length
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.views.decorators.http import require_GET
from eventsourcing.application import Application

from eventsourcing_django.applications import declarations
from eventsourcing_django.recorders import DjangoApplicationRecorder
from eventsourcing_django.status import (
    application_status,
    application_statuses,
    projection_statuses,
)

PERMISSION = "eventsourcing_django.view_event_store"

#: Rows on a page of a notification log.
PAGE_SIZE = 50

#: Characters of a value shown before the rest is folded away.
SHORT_VALUE = 200


@dataclass
class Value:
    """One attribute of a decoded event, ready to render."""

    name: str
    text: str

    @property
    def is_long(self) -> bool:
        return len(self.text) > SHORT_VALUE

    @property
    def short(self) -> str:
        return self.text[:SHORT_VALUE] + "…" if self.is_long else self.text


def decoded(obj: Any) -> list[Value]:
    """The attributes of a domain event (or a snapshot's state), other than its
    identity."""
    skip = {"originator_id", "originator_version", "timestamp"}
    items = obj.items() if isinstance(obj, dict) else vars(obj).items()
    return [Value(str(k), repr(v)) for k, v in sorted(items) if k not in skip]


class ReadOnlyForReaders:
    """Admin permissions: view for holders of our permission, nothing else."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.has_perm(PERMISSION))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EventStoreAdmin(ReadOnlyForReaders, admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only pages of the event store; nothing to add, change or delete."""

    def get_urls(self) -> list[URLPattern]:
        def view(function: Any) -> Any:
            return self.admin_site.admin_view(require_GET(function))

        return [
            # The name the admin's index links to.
            path(
                "",
                view(self.index_view),
                name="eventsourcing_django_eventstore_changelist",
            ),
            path(
                "projections/",
                view(self.projections_view),
                name="eventsourcing_eventstore_projections",
            ),
            path(
                "<str:application>/",
                view(self.log_view),
                name="eventsourcing_eventstore_log",
            ),
            path(
                "<str:application>/aggregates/<str:originator_id>/",
                view(self.aggregate_view),
                name="eventsourcing_eventstore_aggregate",
            ),
        ]

    # Pages ---------------------------------------------------------------------

    def index_view(self, request: HttpRequest) -> HttpResponse:
        self._check(request)
        context = self._context(request, "Event store")
        context["applications"] = application_statuses()
        return TemplateResponse(
            request, "admin/eventsourcing_django/eventstore/index.html", context
        )

    def projections_view(self, request: HttpRequest) -> HttpResponse:
        self._check(request)
        context = self._context(request, "Projections")
        context["projections"] = projection_statuses()
        return TemplateResponse(
            request, "admin/eventsourcing_django/eventstore/projections.html", context
        )

    def log_view(self, request: HttpRequest, application: str) -> HttpResponse:
        self._check(request)
        app = self._application(application)
        recorder = app.recorder
        assert isinstance(recorder, DjangoApplicationRecorder)
        context = self._context(request, f"{application}: notification log")
        context["application"] = application_status(application)
        topic = request.GET.get("topic", "").strip()
        originator = request.GET.get("originator_id", "").strip()
        rows = recorder.model._default_manager.using(recorder.using).all()
        if topic:
            rows = rows.filter(topic=topic)
        if originator:
            parsed = self._originator_id(app, originator)
            if parsed is None:
                context["filter_error"] = f"{originator!r} is not a UUID."
                rows = rows.none()
            else:
                rows = rows.filter(originator_id=parsed)
        context.update(self._page(rows, request))
        context.update(topic=topic, originator_id=originator)
        return TemplateResponse(
            request, "admin/eventsourcing_django/eventstore/log.html", context
        )

    def aggregate_view(
        self, request: HttpRequest, application: str, originator_id: str
    ) -> HttpResponse:
        self._check(request)
        app = self._application(application)
        parsed = self._originator_id(app, originator_id)
        if parsed is None:
            raise Http404(f"{originator_id!r} is not a UUID")
        events = [
            {
                "version": e.originator_version,
                "type": type(e).__qualname__,
                "timestamp": getattr(e, "timestamp", None),
                "values": decoded(e),
            }
            for e in app.events.get(parsed)
        ]
        if not events:
            raise Http404(f"No events of {originator_id} in {application}")
        snapshots = []
        if app.snapshots is not None:
            snapshots = [
                {
                    "version": s.originator_version,
                    "type": getattr(s, "topic", type(s).__qualname__),
                    "values": decoded(getattr(s, "state", s)),
                }
                for s in app.snapshots.get(parsed)
            ]
        context = self._context(request, f"{application}: {originator_id}")
        context.update(
            application=application_status(application),
            originator_id=originator_id,
            events=events,
            snapshots=snapshots,
        )
        return TemplateResponse(
            request, "admin/eventsourcing_django/eventstore/aggregate.html", context
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The admin index links here: the event store has no list of rows.
        return self.index_view(request)

    # Helpers -------------------------------------------------------------------

    def _check(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def _context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "has_view_permission": True,
        }

    def _application(self, name: str) -> Application[Any]:
        from eventsourcing_django.status import application_instance

        if name not in declarations():
            raise Http404(f"No application {name!r} is declared")
        return application_instance(name)

    @staticmethod
    def _originator_id(app: Application[Any], value: str) -> Any:
        if getattr(app.recorder, "originator_id_type", "uuid") == "text":
            return value
        try:
            return UUID(value)
        except ValueError:
            return None

    @staticmethod
    def _page(rows: Any, request: HttpRequest) -> dict[str, Any]:
        """One page of rows by keyset: ``before`` or ``after`` a notification ID
        (newest first), so no page costs a count or an offset scan."""
        rows = rows.annotate(size=Length("state")).values(
            "notification_id", "originator_id", "originator_version", "topic", "size"
        )
        before, after = _int(request.GET.get("before")), _int(request.GET.get("after"))
        if after is not None:
            page = list(
                rows.filter(notification_id__gt=after).order_by("notification_id")[
                    : PAGE_SIZE + 1
                ]
            )
            has_newer, has_older = len(page) > PAGE_SIZE, True
            page = page[:PAGE_SIZE][::-1]
        else:
            if before is not None:
                rows = rows.filter(notification_id__lt=before)
            page = list(rows.order_by("-notification_id")[: PAGE_SIZE + 1])
            has_older, has_newer = len(page) > PAGE_SIZE, before is not None
            page = page[:PAGE_SIZE]
        return {
            "rows": page,
            "newer": page[0]["notification_id"] if page and has_newer else None,
            "older": page[-1]["notification_id"] if page and has_older else None,
        }


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
