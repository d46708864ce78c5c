"""Which database alias holds an application's tables.

Add :class:`EventSourcingRouter` to ``DATABASE_ROUTERS`` and name the alias of each
application in ``EVENTSOURCING_DATABASES``::

    DATABASE_ROUTERS = ["eventsourcing_django.routers.EventSourcingRouter"]
    EVENTSOURCING_DATABASES = {"Universe": "events"}

The router answers only for the per-application models and only for the
applications in the setting; for anything else it returns None, so the routers
after it (django-tenants' ``TenantSyncRouter``, say) decide.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models, router

from eventsourcing_django.builder import application_of, build_model
from eventsourcing_django.conf import (
    DATABASES_SETTING,
    database_for_application,
    database_setting_key,
)
from eventsourcing_django.errors import check_database_alias

#: The hint our migration operations give ``allow_migrate``: the application name.
APPLICATION_HINT = "eventsourcing_application"


class EventSourcingRouter:
    """Sends each application's tables to the alias the settings name for it."""

    def _alias(self, model: type[models.Model]) -> str | None:
        application_name = application_of(model)
        if application_name is None:
            return None
        return database_for_application(application_name)

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        return self._alias(model)

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str | None:
        return self._alias(model)

    def allow_relation(
        self, obj1: models.Model, obj2: models.Model, **hints: Any
    ) -> bool | None:
        alias1, alias2 = self._alias(type(obj1)), self._alias(type(obj2))
        if alias1 is None or alias2 is None:
            return None
        # Rows of two applications can only refer to each other in one database.
        return alias1 == alias2

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        # Our operations name the application; the migration's app_label is the
        # project app that holds the migration, not ours.
        application_name = hints.get(APPLICATION_HINT)
        if application_name is None:
            model = hints.get("model")
            if isinstance(model, type) and issubclass(model, models.Model):
                application_name = application_of(model)
        if not isinstance(application_name, str):
            return None
        alias = database_for_application(application_name)
        return None if alias is None else db == alias


def _events_model(application_name: str, schema: str | None) -> type[models.Model]:
    from eventsourcing_django.tables import ApplicationTables

    tables = ApplicationTables.for_application(application_name)
    return build_model(
        "events", tables.events, application_name=application_name, schema=schema
    )


def alias_for_application(application_name: str, *, schema: str | None = None) -> str:
    """The alias Django's routers give for writing the application's events."""
    return router.db_for_write(_events_model(application_name, schema)) or "default"


def routed_alias(application_name: str, *, schema: str | None = None) -> str:
    """:func:`alias_for_application`, refused with where it came from if unknown."""
    alias = alias_for_application(application_name, schema=schema)
    if alias in connections:
        return alias
    return check_database_alias(
        alias,
        application_name=application_name,
        source=_who_routes(application_name, schema),
    )


def _who_routes(application_name: str, schema: str | None) -> str:
    """Which setting or router chose the application's alias, for messages."""
    model = _events_model(application_name, schema)
    # The first router with an answer decides, as in django.db.router.
    for each in router.routers:
        method = getattr(each, "db_for_write", None)
        if method is None or method(model) is None:
            continue
        if isinstance(each, EventSourcingRouter):
            key = database_setting_key(application_name)
            return f"settings.{DATABASES_SETTING}[{key!r}]"
        cls = type(each)
        return f"the database router {cls.__module__}.{cls.__qualname__}"
    return "settings.DATABASE_ROUTERS"


__all__ = [
    "APPLICATION_HINT",
    "EventSourcingRouter",
    "alias_for_application",
    "routed_alias",
]
