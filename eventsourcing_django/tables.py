"""Table names for one application, and the rules that keep them safe."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Defined with the package's other errors; importable from here as before.
from eventsourcing_django.errors import (
    InvalidApplicationNameError as InvalidApplicationNameError,
)
from eventsourcing_django.errors import InvalidSchemaNameError as InvalidSchemaNameError
from eventsourcing_django.vocabulary import DCB_KINDS, KINDS

# PostgreSQL keeps at most 63 bytes of an identifier and silently truncates the
# rest, so two long application names could end up sharing one table.
MAX_IDENTIFIER_BYTES = 63

_SAFE_NAME = re.compile(r"[A-Za-z0-9_]+")

SUFFIXES = KINDS + DCB_KINDS


def check_identifier(name: str, *, what: str) -> None:
    """Refuse an identifier that is empty, not [A-Za-z0-9_] or over 63 bytes."""
    if not name or not _SAFE_NAME.fullmatch(name):
        msg = (
            f"{what} {name!r} is not a safe SQL identifier: "
            "only letters A-Z and a-z, digits 0-9 and underscores are allowed"
        )
        raise ValueError(msg)
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        msg = (
            f"{what} {name!r} is {len(name.encode())} bytes long: "
            f"PostgreSQL identifiers are limited to {MAX_IDENTIFIER_BYTES} bytes"
        )
        raise ValueError(msg)


#: PostgreSQL keeps schema names starting with this for itself (``pg_catalog``,
#: ``pg_toast``...) and refuses to create others: we refuse them before any SQL.
RESERVED_SCHEMA_PREFIX = "pg_"


def check_schema_name(schema: str) -> str:
    """Return ``schema`` if it is a safe identifier of a user's schema, else raise."""
    try:
        check_identifier(schema, what="Schema name")
    except ValueError as e:
        raise InvalidSchemaNameError(str(e)) from None
    # Case matters: identifiers are always quoted, and PostgreSQL reserves
    # only the lower-case prefix.
    if schema.startswith(RESERVED_SCHEMA_PREFIX):
        msg = (
            f"Schema name {schema!r} starts with {RESERVED_SCHEMA_PREFIX!r}, which "
            "PostgreSQL reserves for its system schemas: choose another name, "
            "such as 'events'"
        )
        raise InvalidSchemaNameError(msg)
    return schema


@dataclass(frozen=True)
class ApplicationTables:
    """The names of the tables of one application: ``<name>_events`` etc."""

    application_name: str
    prefix: str

    @classmethod
    def for_application(cls, application_name: str) -> ApplicationTables:
        """Check ``application_name`` and return its table names.

        Raises :class:`InvalidApplicationNameError` naming the application and the
        rule it breaks, before any SQL is composed.
        """
        if not application_name:
            msg = "An application name is needed to name its tables, got ''"
            raise InvalidApplicationNameError(msg)
        if not _SAFE_NAME.fullmatch(application_name):
            msg = (
                f"Application name {application_name!r} cannot make safe table "
                "names: only letters A-Z and a-z, digits 0-9 and underscores "
                "are allowed"
            )
            raise InvalidApplicationNameError(msg)
        prefix = application_name.lower()
        longest = max((f"{prefix}_{s}" for s in SUFFIXES), key=len)
        if len(longest.encode()) > MAX_IDENTIFIER_BYTES:
            msg = (
                f"Application name {application_name!r} is too long: its table "
                f"name {longest!r} would be {len(longest)} bytes, and PostgreSQL "
                f"identifiers are limited to {MAX_IDENTIFIER_BYTES} bytes "
                f"(so the name may have at most "
                f"{MAX_IDENTIFIER_BYTES - len('_snapshots')} characters)"
            )
            raise InvalidApplicationNameError(msg)
        return cls(application_name=application_name, prefix=prefix)

    @property
    def events(self) -> str:
        return f"{self.prefix}_events"

    @property
    def snapshots(self) -> str:
        return f"{self.prefix}_snapshots"

    @property
    def tracking(self) -> str:
        return f"{self.prefix}_tracking"

    # A DCB application's tables. Their suffixes are no longer than
    # "_snapshots", so the name rule above holds for them too.

    @property
    def dcb(self) -> str:
        """Tagged events of a DCB application, numbered by position."""
        return f"{self.prefix}_dcb"

    @property
    def dcb_tags(self) -> str:
        """One row per tag of each event in :attr:`dcb`, for reads by tag."""
        return f"{self.prefix}_dcb_tags"

    def for_purpose(self, purpose: str) -> str:
        """The table for an aggregate recorder's purpose ("events", "snapshots")."""
        table = f"{self.prefix}_{purpose}"
        try:
            check_identifier(table, what="Table name")
        except ValueError as e:
            msg = f"Purpose {purpose!r} of application {self.application_name!r}: {e}"
            raise InvalidApplicationNameError(msg) from None
        return table
