"""The event store in Django's admin: read-only, for users with our permission."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from eventsourcing_django.console import PERMISSION, EventStoreAdmin
from eventsourcing_django.models import EventStore, ProjectionWorker

admin.site.register(EventStore, EventStoreAdmin)


@admin.register(ProjectionWorker)
class ProjectionWorkerAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The workers' registrations, to read; run_projections keeps them."""

    list_display = ("name", "pid", "host", "started_at", "heartbeat_at")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.has_perm(PERMISSION))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
