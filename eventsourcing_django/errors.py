"""The package's errors, all defined here: Django's database errors raised again
as the library's, configuration mistakes told with their fix (subclasses of
Django's ``ImproperlyConfigured`` and of ``ValueError`` or ``LookupError``), bad
names, and the upgrade's refusals. Modules that raise them re-export them under
the names they had there."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db import utils as django_errors
from eventsourcing import persistence

from eventsourcing_django.vocabulary import DCB_KINDS, KINDS

if TYPE_CHECKING:
    from eventsourcing_django.vocabulary import Kind

# Most specific first: Django's classes form the same tree as DB-API's.
_MAPPING: tuple[tuple[type[Exception], type[persistence.PersistenceError]], ...] = (
    (django_errors.IntegrityError, persistence.IntegrityError),
    (django_errors.DataError, persistence.DataError),
    (django_errors.OperationalError, persistence.OperationalError),
    (django_errors.InternalError, persistence.InternalError),
    (django_errors.ProgrammingError, persistence.ProgrammingError),
    (django_errors.NotSupportedError, persistence.NotSupportedError),
    (django_errors.DatabaseError, persistence.DatabaseError),
    (django_errors.InterfaceError, persistence.InterfaceError),
    (django_errors.Error, persistence.PersistenceError),
)


class TableMissingError(persistence.ProgrammingError):
    """An application's table does not exist where the recorder looked for it."""


class ConnectionLostError(persistence.OperationalError):
    """The connection broke during a call (a server restart, a failover, a
    network cut). The recorder closed it, so the next call reconnects. A write
    that failed this way may or may not have been committed."""


class DatabaseUnavailableError(persistence.OperationalError):
    """The database could not be reached; nothing of the call was sent."""


class UnknownDatabaseError(ImproperlyConfigured, ValueError):
    """A database alias, given for an application, that is not in settings.DATABASES.

    A configuration mistake (``ImproperlyConfigured``) that callers written
    against earlier versions catch as a ``ValueError``.
    """


class ApplicationNotDeclaredError(ImproperlyConfigured, LookupError):
    """An application was asked for by a name the setting does not declare."""


class InvalidRetrySettingError(ImproperlyConfigured, ValueError):
    """EVENTSOURCING_RETRIES or EVENTSOURCING_RETRY_DELAY is not usable."""


class InvalidApplicationNameError(persistence.PersistenceError, ValueError):
    """An application name that cannot give safe table names."""


class InvalidSchemaNameError(persistence.PersistenceError, ValueError):
    """A schema name that is not a safe identifier."""


class UpgradeError(Exception):
    """The upgrade cannot go on; the message says why and what to do."""


class NoSharedTablesError(UpgradeError):
    """The alias has none of the shared tables of eventsourcing-django 0.x."""


def check_database_alias(alias: str, *, application_name: str, source: str) -> str:
    """Return ``alias`` if settings.DATABASES has it; else say where it came from."""
    if alias in connections:
        return alias
    known = ", ".join(repr(a) for a in connections) or "none"
    msg = (
        f"Database alias {alias!r} of application {application_name!r}, given by "
        f"{source}, is not in settings.DATABASES (which has: {known}). Correct "
        f"{source}, or add {alias!r} to settings.DATABASES."
    )
    raise UnknownDatabaseError(msg)


def require_installed(purpose: str) -> None:
    """Refuse, with the fix, to use our models when the app is not installed.

    Without the app, importing :mod:`eventsourcing_django.models` fails with
    Django's RuntimeError about a model the user never wrote.
    """
    if not apps.is_installed("eventsourcing_django"):
        msg = (
            f"{purpose} needs the app eventsourcing_django: add 'eventsourcing_django' "
            "to INSTALLED_APPS (and run 'manage.py migrate')."
        )
        raise ImproperlyConfigured(msg)


def missing_table_message(
    application_name: str,
    missing: Sequence[tuple[Kind, str]],
    alias: str,
    schema: str | None,
    *,
    originator_id_type: str = "uuid",
    tenant_schema: bool = False,
) -> str:
    """Which tables are missing where, and the ways to create them there.

    Without the events table the application has never been set up, so the
    advice creates all its tables; otherwise (a projection's or a process
    application's tracking, snapshots turned on later) only the missing ones.
    """
    kinds = {kind for kind, _ in missing}
    if kinds <= set(DCB_KINDS):
        return _missing_dcb_message(
            application_name, missing, alias, schema, tenant_schema=tenant_schema
        )
    create: set[Kind] = set(KINDS) if "events" in kinds else kinds
    only = create != set(KINDS)
    arguments = [repr(application_name)]
    options = [application_name]
    if only:
        arguments += [f"{k}={k in create}" for k in KINDS]
        options += [f"--no-{k}" for k in KINDS if k not in create]
    if originator_id_type != "uuid" and create != {"tracking"}:
        arguments.append(f"originator_id_type={originator_id_type!r}")
        options.append(f"--originator-id-type {originator_id_type}")
    options.append(f"--database {alias}")
    if schema:
        options.append(f"--schema {schema}")
    if tenant_schema:
        # django-tenants runs each tenant's migrations; plain migrate does not.
        migrate = f"manage.py migrate_schemas --schema {schema}"
    else:
        migrate = "manage.py migrate" + (
            "" if alias == "default" else f" --database {alias}"
        )
    if create == {"tracking"}:
        makemigration = (
            "'manage.py eventsourcing_makemigration <app_label> <projection name "
            "or process application topic>'"
        )
    else:
        makemigration = (
            "'manage.py eventsourcing_makemigration <app_label> <application topic>'"
        )
    that = "that table" if len(create) == 1 else "those tables"
    where = f"database {alias!r}" + (f", schema {schema!r}" if schema else "")
    return (
        f"{', '.join(repr(t) for _, t in missing)} of application "
        f"{application_name!r} not found in {where}. Create "
        f"{that if only else 'the tables'} with the migration operation "
        f"CreateApplicationTables({', '.join(arguments)}) from "
        f"eventsourcing_django.operations ({makemigration} writes it) and run "
        f"'{migrate}', or with 'manage.py eventsourcing_tables create "
        f"{' '.join(options)}', or let the factory create "
        f"{'it' if len(create) == 1 else 'them'} at start-up (application env "
        "CREATE_TABLE=y, the default)"
    )


def _migrate_command(alias: str, schema: str | None, *, tenant_schema: bool) -> str:
    if tenant_schema:
        # django-tenants runs each tenant's migrations; plain migrate does not.
        return f"manage.py migrate_schemas --schema {schema}"
    return "manage.py migrate" + ("" if alias == "default" else f" --database {alias}")


def _missing_dcb_message(
    application_name: str,
    missing: Sequence[tuple[Kind, str]],
    alias: str,
    schema: str | None,
    *,
    tenant_schema: bool,
) -> str:
    """:func:`missing_table_message` for a DCB application's tables."""
    options = [application_name, f"--database {alias}"]
    if schema:
        options.append(f"--schema {schema}")
    where = f"database {alias!r}" + (f", schema {schema!r}" if schema else "")
    migrate = _migrate_command(alias, schema, tenant_schema=tenant_schema)
    return (
        f"{', '.join(repr(t) for _, t in missing)} of DCB application "
        f"{application_name!r} not found in {where}. Create the tables with the "
        f"migration operation CreateDCBTables({application_name!r}) from "
        "eventsourcing_django.operations ('manage.py eventsourcing_makemigration "
        f"<app_label> <application topic>' writes it) and run '{migrate}', or "
        f"with 'manage.py eventsourcing_tables create --dcb {' '.join(options)}', "
        "or let the factory create them at start-up (application env "
        "CREATE_TABLE=y, the default)"
    )


@contextmanager
def translate_errors(
    is_missing_table: Callable[[BaseException], bool],
    describe_missing: Callable[[str], str],
    is_bad_value: Callable[[BaseException], bool] = lambda _: False,
) -> Iterator[None]:
    """Raise Django's database errors as the library's, with a clear message
    when one of the recorder's tables is missing.

    ``is_bad_value`` tells the driver's own refusals of a value, raised on the
    client before Django could wrap them (psycopg2's bare ``ValueError`` for a
    NUL in a text parameter), which are raised as the library's ``DataError``.
    """
    try:
        yield
    except ValueError as e:
        if is_bad_value(e):
            raise persistence.DataError(str(e)) from e
        raise
    except django_errors.Error as e:
        if is_missing_table(e):
            raise TableMissingError(describe_missing(str(e))) from e
        for django_class, library_class in _MAPPING:
            if isinstance(e, django_class):
                raise library_class(str(e)) from e
        raise  # pragma: no cover (every Django database error is an Error)
