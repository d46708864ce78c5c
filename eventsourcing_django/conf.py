"""The project settings that place applications: which alias, which schema.

``EVENTSOURCING_DATABASES`` maps application names to database aliases (read by
:class:`~eventsourcing_django.routers.EventSourcingRouter`) and
``EVENTSOURCING_SCHEMAS`` maps application names to PostgreSQL schemas (read by the
factory and the migration operations). An application's own environment
(``DJANGO_DB_ALIAS``, ``DJANGO_SCHEMA``) wins over both.

Names are matched ignoring case: an application's tables are named after its
lower-cased name, so ``Universe`` and ``UNIVERSE`` share tables, and must share a
place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import BaseDatabaseWrapper

DATABASES_SETTING = "EVENTSOURCING_DATABASES"
SCHEMAS_SETTING = "EVENTSOURCING_SCHEMAS"


def application_setting(setting: str) -> Mapping[str, str]:
    """The mapping of application names in ``setting`` (empty if not set)."""
    value = getattr(settings, setting, None)
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        msg = (
            f"settings.{setting} must be a dict of application names to "
            f"strings, got {value!r}"
        )
        raise ImproperlyConfigured(msg)
    return value


def count_setting(
    setting: str,
    default: int,
    *,
    minimum: int,
    counts: str,
    error: type[Exception] = ImproperlyConfigured,
) -> int:
    """``settings.<setting>``, a whole number of ``counts``, at least ``minimum``
    (``default`` if not set); else ``error``, naming the setting and the value.
    ``counts`` may say what the minimum means: "events, 1 or more (...)"."""
    value: Any = getattr(settings, setting, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        msg = f"settings.{setting} must be a whole number of {counts}, got {value!r}"
        raise error(msg)
    return value


def seconds_setting(
    setting: str,
    default: float,
    *,
    zero_allowed: bool,
    error: type[Exception] = ImproperlyConfigured,
) -> float:
    """``settings.<setting>``, a number of seconds, 0 or more or above 0
    (``default`` if not set); else ``error``, naming the setting and the value."""
    value: Any = getattr(settings, setting, default)
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not (value >= 0 if zero_allowed else value > 0)
    ):
        bound = "0 or more" if zero_allowed else "above 0"
        msg = f"settings.{setting} must be a number of seconds, {bound}, got {value!r}"
        raise error(msg)
    return float(value)


def _lookup_key(setting: str, application_name: str) -> str | None:
    mapping = application_setting(setting)
    if application_name in mapping:
        return application_name
    folded = application_name.lower()
    for name in mapping:
        if name.lower() == folded:
            return name
    return None


def _lookup(setting: str, application_name: str) -> str | None:
    key = _lookup_key(setting, application_name)
    return None if key is None else application_setting(setting)[key]


def database_for_application(application_name: str) -> str | None:
    """The alias ``EVENTSOURCING_DATABASES`` gives the application, if any."""
    return _lookup(DATABASES_SETTING, application_name)


def database_setting_key(application_name: str) -> str | None:
    """The key of ``EVENTSOURCING_DATABASES`` that places the application, if any."""
    return _lookup_key(DATABASES_SETTING, application_name)


def schema_for_application(application_name: str) -> str | None:
    """The schema ``EVENTSOURCING_SCHEMAS`` gives the application, if any."""
    return _lookup(SCHEMAS_SETTING, application_name)


def tenant_schema(connection: BaseDatabaseWrapper) -> str | None:
    """The schema django-tenants has set on ``connection``, if it manages it.

    With django-tenants, unqualified names resolve through a search path that
    ends with ``public``, so a tenant's missing table silently becomes public's:
    tables on such a connection are always pinned to a schema.
    """
    if not hasattr(connection, "set_schema"):
        return None
    schema = getattr(connection, "schema_name", None)
    return schema if isinstance(schema, str) and schema else None
