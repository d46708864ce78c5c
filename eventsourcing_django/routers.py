"""Which database alias holds an application's tables."""

from __future__ import annotations

from django.db import router

from eventsourcing_django.builder import build_model


def alias_for_application(application_name: str, *, schema: str | None = None) -> str:
    """The alias Django's routers give for writing the application's events."""
    from eventsourcing_django.tables import ApplicationTables

    tables = ApplicationTables.for_application(application_name)
    model = build_model("events", tables.events, schema=schema)
    return router.db_for_write(model) or "default"
