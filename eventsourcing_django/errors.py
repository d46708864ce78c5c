"""Django's database errors, raised again as the library's."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from django.db import utils as django_errors
from eventsourcing import persistence

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


def missing_table_message(
    application_name: str, tables: Sequence[str], alias: str, schema: str | None
) -> str:
    where = f"database {alias!r}" + (f", schema {schema!r}" if schema else "")
    command = f"manage.py eventsourcing_tables create {application_name} " + (
        f"--database {alias}" + (f" --schema {schema}" if schema else "")
    )
    return (
        f"{', '.join(repr(t) for t in tables)} of application "
        f"{application_name!r} not found in {where}. Create the tables with the "
        f"migration operation CreateApplicationTables({application_name!r}) from "
        "eventsourcing_django.operations and run 'manage.py migrate' (or "
        f"'manage.py eventsourcing_makemigration'), or with '{command}', or let "
        "the factory create them at start-up (application env CREATE_TABLE=y, "
        "the default)"
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
