"""Builds the Django model class of one application table, once.

The classes live in a private :class:`~django.apps.registry.Apps`, not in Django's
global registry: there ``makemigrations`` would see them and write ``CreateModel``
operations for every application, and a second class for the same table would warn.
"""

from __future__ import annotations

import threading

from django.apps.registry import Apps
from django.db import models

from eventsourcing_django.errors import require_installed

# Re-exported: they were defined here before vocabulary.py.
from eventsourcing_django.vocabulary import Kind as Kind
from eventsourcing_django.vocabulary import OriginatorIDType as OriginatorIDType

APP_LABEL = "eventsourcing_django"

#: The registry that holds every per-application model, away from Django's own.
dynamic_apps = Apps()

_cache: dict[tuple[str, str, str | None, str], type[models.Model]] = {}
_lock = threading.Lock()

#: The class attribute of a per-application model that names its application.
APPLICATION_ATTRIBUTE = "eventsourcing_application"


def qualified_db_table(table: str, schema: str | None) -> str:
    """The ``db_table`` for ``table`` in ``schema`` (quoted when qualified)."""
    if schema is None:
        return table
    # Django passes a name that is already quoted at both ends through quote_name()
    # unchanged, so a schema-qualified name can be given this way. Both parts
    # have been checked to be plain identifiers.
    return f'"{schema}"."{table}"'


def build_model(
    kind: Kind,
    table: str,
    *,
    application_name: str,
    schema: str | None = None,
    originator_id_type: OriginatorIDType = "uuid",
) -> type[models.Model]:
    """Return the model class of ``table``, building it on first use.

    The class names its application (:func:`application_of`), so that routers can
    place it. Names that differ only in case share tables, and so share a class.
    """
    key = (kind, table, schema, originator_id_type)
    try:
        return _cache[key]
    except KeyError:
        pass
    with _lock:
        if key not in _cache:
            _cache[key] = _build(
                kind, table, application_name, schema, originator_id_type
            )
        return _cache[key]


def application_of(model: type[models.Model]) -> str | None:
    """The application whose table ``model`` is, or None if not one of ours."""
    if model._meta.apps is not dynamic_apps:
        return None
    name = getattr(model, APPLICATION_ATTRIBUTE, None)
    return name if isinstance(name, str) else None


def _build(
    kind: Kind,
    table: str,
    application_name: str,
    schema: str | None,
    originator_id_type: OriginatorIDType,
) -> type[models.Model]:
    # Imported here: this module is loaded before Django's apps are ready.
    require_installed("Storing applications through Django")
    from eventsourcing_django.models import (
        NotificationTrackingRecord,
        SnapshotRecord,
        StoredEventRecord,
    )

    base = {
        "events": StoredEventRecord,
        "snapshots": SnapshotRecord,
        "tracking": NotificationTrackingRecord,
    }[kind]
    parts = [schema, table] if schema else [table]
    if kind != "tracking" and originator_id_type != "uuid":
        parts.append(originator_id_type)
    class_name = "".join(p.title().replace("_", "") for p in parts)
    # Model names are unique per registry; distinct tables can fold to one name.
    taken = dynamic_apps.all_models[APP_LABEL]
    unique_name, n = class_name, 1
    while unique_name.lower() in taken:
        n += 1
        unique_name = f"{class_name}{n}"
    class_name = unique_name
    meta = type(
        "Meta",
        (),
        {
            "app_label": APP_LABEL,
            "apps": dynamic_apps,
            "db_table": qualified_db_table(table, schema),
            "managed": False,
            # The same table in two schemas gets two classes; keep their names apart.
            "verbose_name": ".".join(p for p in (schema, table) if p),
        },
    )
    attrs: dict[str, object] = {
        "__module__": __name__,
        "Meta": meta,
        APPLICATION_ATTRIBUTE: application_name,
    }
    if kind != "tracking" and originator_id_type == "text":
        attrs["originator_id"] = models.TextField()
    return type(class_name, (base,), attrs)
