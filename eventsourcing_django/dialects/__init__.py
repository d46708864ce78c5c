"""What differs between database vendors, in one place: one module per vendor.

A :class:`Dialect` composes the SQL of one application table on one database alias:
its DDL, the insert that returns notification IDs, the lock that keeps those IDs
contiguous, the reads, and how a missing table or a lost connection shows itself.
Recorders compose their statements once, through a dialect, and never ask which
vendor they run on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventsourcing.persistence import NotSupportedError

from eventsourcing_django.dialects.base import TABLE_COMMENT_PREFIX, Dialect
from eventsourcing_django.dialects.mysql import MYSQL_LOCK_TABLE, MySQLDialect
from eventsourcing_django.dialects.postgresql import PostgresDialect
from eventsourcing_django.dialects.sqlite import SQLiteDialect

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    from eventsourcing_django.builder import OriginatorIDType

__all__ = [
    "DIALECTS",
    "MYSQL_LOCK_TABLE",
    "TABLE_COMMENT_PREFIX",
    "Dialect",
    "MySQLDialect",
    "PostgresDialect",
    "SQLiteDialect",
    "dialect_for",
]

DIALECTS: dict[str, type[Dialect]] = {
    PostgresDialect.vendor: PostgresDialect,
    SQLiteDialect.vendor: SQLiteDialect,
    MySQLDialect.vendor: MySQLDialect,
}


def dialect_for(
    connection: BaseDatabaseWrapper,
    *,
    schema: str | None,
    originator_id_type: OriginatorIDType = "uuid",
) -> Dialect:
    """The dialect of ``connection``'s vendor, or a clear error."""
    try:
        cls = DIALECTS[connection.vendor]
    except KeyError:
        msg = (
            f"Database alias {connection.alias!r} uses vendor "
            f"{connection.vendor!r}; eventsourcing_django supports "
            f"{', '.join(sorted(DIALECTS))}"
        )
        raise NotSupportedError(msg) from None
    return cls(connection, schema=schema, originator_id_type=originator_id_type)
