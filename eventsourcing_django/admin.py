"""The event store in Django's admin: read-only, for users with our permission."""

from __future__ import annotations

from django.contrib import admin

from eventsourcing_django.console import EventStoreAdmin, ReadOnlyForReaders
from eventsourcing_django.models import EventStore, ProjectionWorker

admin.site.register(EventStore, EventStoreAdmin)


@admin.register(ProjectionWorker)
class ProjectionWorkerAdmin(ReadOnlyForReaders, admin.ModelAdmin):  # type: ignore[type-arg]
    """The workers' registrations, to read; run_projections keeps them."""

    list_display = ("name", "pid", "host", "started_at", "heartbeat_at")
