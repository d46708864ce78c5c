"""Creating and dropping one application's tables on one alias."""

from __future__ import annotations

import contextlib
from typing import Any

from django.db import connections, transaction
from eventsourcing.persistence import NotSupportedError

from eventsourcing_django.dialects import Dialect
from eventsourcing_django.errors import translate_errors
from eventsourcing_django.vocabulary import Kind


def _no_missing_table(_: BaseException) -> bool:
    return False


def _ddl_transaction(using: str) -> contextlib.AbstractContextManager[Any]:
    """A transaction around DDL where the database can roll DDL back.

    MariaDB commits before and after each DDL statement: there, an atomic
    block would only break (its savepoints vanish with the implicit commit), and
    what ran cannot be undone.
    """
    if connections[using].features.can_rollback_ddl:
        return transaction.atomic(using=using)
    return contextlib.nullcontext()


def create_table(using: str, dialect: Dialect, kind: Kind, table: str) -> bool:
    """Create ``table`` if it does not exist; return whether it was created.

    Safe when several processes start at once: the existence check is repeated
    under a lock that serializes creators of the same table. A server that
    cannot keep them (MySQL, an old MariaDB) is refused before anything runs.
    """
    connection = connections[using]
    problem = dialect.server_problem(connection)
    if problem is not None:
        raise NotSupportedError(problem)
    with translate_errors(_no_missing_table, str), connection.cursor() as cursor:
        if dialect.table_exists(cursor, table):
            return False
        with dialect.write_lock(), _ddl_transaction(using):
            dialect.serialize_ddl(cursor, table)
            if dialect.table_exists(cursor, table):
                return False
            for statement in create_table_statements(dialect, kind, table):
                cursor.execute(statement)
    return True


def create_table_statements(dialect: Dialect, kind: Kind, table: str) -> list[str]:
    """The statements that create ``table`` (and its schema), each idempotent."""
    return dialect.create_schema_statements() + dialect.create_table_statements(
        kind, table
    )


def drop_table(using: str, dialect: Dialect, table: str) -> bool:
    """Drop ``table`` if it exists; return whether it was dropped."""
    connection = connections[using]
    with translate_errors(_no_missing_table, str), connection.cursor() as cursor:
        if not dialect.table_exists(cursor, table):
            return False
        with dialect.write_lock(), _ddl_transaction(using):
            for statement in dialect.drop_table_statements(table):
                cursor.execute(statement)
    return True


def truncate_table(using: str, dialect: Dialect, table: str) -> bool:
    """Delete every row of ``table`` and restart its notification IDs at 1;
    return whether the table exists."""
    connection = connections[using]
    with (
        translate_errors(_no_missing_table, str),
        dialect.write_lock(),
        _ddl_transaction(using),
        connection.cursor() as cursor,
    ):
        if not dialect.table_exists(cursor, table):
            return False
        for statement, params in dialect.truncate_table_statements(table):
            cursor.execute(statement, params)
    return True
