"""Schema-per-tenant applications with django-tenants.

Each tenant has its own copy of each application's tables in its schema, and its
own instance of each application (its own aggregate cache, snapshots and
notification log). A tenant's application pins its schema: every statement names
``"<tenant schema>"."<table>"``, in any thread and whatever tenant the connection
is set to, so it can neither read another tenant's rows nor fall through to
``public``'s table of the same name when its own is missing.

django-tenants is only needed when these functions are used.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any, TypeVar, cast

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from eventsourcing.application import Application

from eventsourcing_django.applications import declaration, is_declared
from eventsourcing_django.conf import tenant_schema
from eventsourcing_django.dialects import dialect_for
from eventsourcing_django.factory import Factory
from eventsourcing_django.tables import check_schema_name

A = TypeVar("A", bound=Application[Any])

_applications: dict[tuple[type[Application[Any]], str], Application[Any]] = {}
_lock = threading.Lock()


def tenant_alias() -> str:
    """The alias django-tenants manages (its ``TENANT_DB_ALIAS`` setting)."""
    from django_tenants.utils import get_tenant_database_alias

    return str(get_tenant_database_alias())


def get_application(application: type[A] | str, **kwargs: Any) -> A:
    """The instance of an application for the tenant of the current connection.

    ``application`` is the class, or the name of an application declared in
    ``settings.EVENTSOURCING_APPLICATIONS``. Built on first use, from its
    declaration if it has one, and then reused for that tenant's schema; keyword
    arguments (``env=...``) are passed to the constructor the first time, their
    env over the declared one.
    """
    connection = connections[tenant_alias()]
    schema = tenant_schema(connection)
    if schema is None:
        msg = (
            "get_application() needs django-tenants' database backend "
            "(ENGINE 'django_tenants.postgresql_backend') on the tenant alias"
        )
        raise RuntimeError(msg)
    return get_tenant_application(application, schema, **kwargs)


def get_tenant_application(
    application: type[A] | str, schema_name: str, **kwargs: Any
) -> A:
    """The instance of an application for the tenant whose schema is
    ``schema_name`` (for workers and commands, which have no request to say the
    tenant)."""
    check_schema_name(schema_name)
    if isinstance(application, str):
        cls = cast("type[A]", declaration(application).application_class())
    else:
        cls = application
    key = (cls, schema_name)
    try:
        return _applications[key]  # type: ignore[return-value]
    except KeyError:
        pass
    with _lock:
        if key not in _applications:
            _applications[key] = _construct(cls, schema_name, **kwargs)
        return _applications[key]  # type: ignore[return-value]


def _construct(cls: type[A], schema_name: str, **kwargs: Any) -> A:
    env = dict(kwargs.pop("env", None) or {})
    if is_declared(cls):
        # The tenant's instance reads events as every other instance does.
        env = declaration(cls).environment(env)
    prefixed = f"{cls.name.upper()}_DJANGO_SCHEMA"
    for key in ("DJANGO_SCHEMA", prefixed):
        if env.get(key, schema_name) != schema_name:
            msg = (
                f"{key}={env[key]!r} in the env of {cls.name}: a tenant's "
                f"application is pinned to its tenant's schema {schema_name!r}"
            )
            raise ValueError(msg)
        # The prefixed key too: it would win over the plain one if it were
        # set in os.environ.
        env[key] = schema_name
    # A tenant's tables come from migrations (migrate_schemas): a missing one is
    # an error to see, not a table to create quietly.
    env.setdefault("CREATE_TABLE", "no")
    keys = ("PERSISTENCE_MODULE", "INFRASTRUCTURE_FACTORY", "FACTORY_TOPIC")
    sources = (env, cls.env, os.environ)
    if not any(source.get(key) for source in sources for key in keys):
        env["PERSISTENCE_MODULE"] = "eventsourcing_django"
    app = cls(env=env, **kwargs)
    if not isinstance(app.factory, Factory):
        app.close()
        msg = (
            f"{cls.name} persists with {type(app.factory).__module__}: a tenant's "
            "application must use PERSISTENCE_MODULE=eventsourcing_django"
        )
        raise ValueError(msg)
    return app


def forget_applications(schema_name: str | None = None) -> None:
    """Close and forget the cached applications of one tenant, or of all."""
    with _lock:
        for key in list(_applications):
            if schema_name is None or key[1] == schema_name:
                _applications.pop(key).close()


@contextlib.contextmanager
def use_schema(connection: BaseDatabaseWrapper, schema: str | None) -> Iterator[None]:
    """Set django-tenants' ``schema`` on ``connection`` for the ORM in the block.

    Our own statements name their schema; the user's models in a projection's
    view do not, and a worker thread's connection starts in ``public``.
    """
    current = tenant_schema(connection)
    if schema is None or current is None or current == schema:
        yield
        return
    previous = connection.tenant  # type: ignore[attr-defined]
    connection.set_schema(schema)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        connection.set_tenant(previous)  # type: ignore[attr-defined]


def empty_cloned_tables(schema_name: str, using: str | None = None) -> list[str]:
    """Empty our tables in a schema just cloned from a template.

    django-tenants copies a template schema's tables with their rows and sets the
    copies' sequences from the template's; a new tenant must start with no events
    and notification IDs from 1. Our tables are told by their comment.
    """
    alias = using or tenant_alias()
    dialect = dialect_for(connections[alias], schema=check_schema_name(schema_name))
    emptied = []
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        for kind, table in dialect.marked_tables(cursor):
            for statement, params in dialect.reset_statements(kind, table):
                cursor.execute(statement, params)
            emptied.append(table)
    return emptied


def _on_schema_created(sender: Any, tenant: Any, **kwargs: Any) -> None:
    base = tenant.get_base_schema() if hasattr(tenant, "get_base_schema") else None
    if base:
        empty_cloned_tables(tenant.schema_name)


def _on_tenant_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    forget_applications(instance.schema_name)


def connect_signals() -> None:
    """Listen to django-tenants (called when our app is ready, if it is installed)."""
    from django.db.models.signals import post_delete
    from django_tenants.signals import post_schema_sync
    from django_tenants.utils import get_tenant_model

    post_schema_sync.connect(_on_schema_created, dispatch_uid="eventsourcing_django")
    post_delete.connect(
        _on_tenant_deleted,
        sender=get_tenant_model(),
        dispatch_uid="eventsourcing_django",
    )
