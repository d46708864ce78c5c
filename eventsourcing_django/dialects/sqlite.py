"""SQLite: one writer per file, serialized in this process; no schemas; WAL.

A file database that our recorders use is switched to WAL (write-ahead log)
journal mode, as ``eventsourcing.sqlite`` does: Django leaves SQLite's rollback
journal, which makes every commit write the changed pages twice and sync the
file more often, and makes readers and the writer wait for each other. WAL
persists in the file: once switched, every connection to it (ours, Django's,
the ``sqlite3`` shell's) uses it. ``settings.EVENTSOURCING_SQLITE_WAL = False``
leaves the journal mode alone. In-memory databases are never switched (they
have no WAL).
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.db.backends.signals import connection_created

from eventsourcing_django.dialects.base import Dialect
from eventsourcing_django.dialects.dcb import DCBStatements

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper

    from eventsourcing_django.vocabulary import Kind


logger = logging.getLogger(__name__)

_sqlite_write_locks: dict[str, threading.RLock] = {}
_sqlite_write_locks_guard = threading.Lock()

#: Setting: False leaves the journal mode of SQLite files alone (default True).
WAL_SETTING = "EVENTSOURCING_SQLITE_WAL"

#: Aliases whose connections are switched to WAL when made: those a recorder
#: has used in this process.
_wal_aliases: set[str] = set()

_PLACEHOLDER = re.compile(r"(?<!%)%s")


def wal_wanted() -> bool:
    """Whether files are to be switched to WAL (the setting; default True)."""
    return bool(getattr(settings, WAL_SETTING, True))


def is_in_memory(name: object) -> bool:
    """Whether a database ``NAME`` is an in-memory database (as Django tells)."""
    if isinstance(name, Path):
        return False
    text = str(name or "")
    return text in ("", ":memory:") or "mode=memory" in text


def journal_mode_of_file(path: object) -> str | None:
    """``"wal"`` or ``"rollback"``, read from the file's header without
    connecting (bytes 18 and 19 are 2 in WAL mode, 1 otherwise); None if there
    is no database file there yet, or it cannot be read."""
    try:
        with open(str(path), "rb") as file:
            header = file.read(20)
    except OSError:
        return None
    if len(header) < 20 or not header.startswith(b"SQLite format 3\x00"):
        return None
    return "wal" if header[18] == 2 and header[19] == 2 else "rollback"


def switch_to_wal(connection: BaseDatabaseWrapper) -> None:
    """Switch the file of ``connection`` (open, outside a transaction) to WAL,
    as eventsourcing.sqlite does; leave in-memory databases and a file that is
    already in WAL mode alone, and do nothing when the setting says so."""
    raw = connection.connection
    if (
        raw is None
        or not wal_wanted()
        or is_in_memory(connection.settings_dict.get("NAME"))
        or raw.in_transaction
    ):
        return
    cursor = raw.cursor()
    try:
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                logger.warning(
                    "SQLite database %r stays in journal mode %r: it could not "
                    "be switched to WAL",
                    connection.settings_dict.get("NAME"),
                    mode,
                )
    except sqlite3.Error as e:
        # Another process holding the file, a read-only directory: the next
        # connection tries again, and system check W002 reports the file.
        logger.warning(
            "SQLite database %r not switched to WAL: %s",
            connection.settings_dict.get("NAME"),
            e,
        )
    finally:
        cursor.close()


def _on_connection_created(
    sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any
) -> None:
    # Sent by Django's connect(), before any transaction on the connection.
    if connection.vendor == "sqlite" and connection.alias in _wal_aliases:
        switch_to_wal(connection)


connection_created.connect(
    _on_connection_created, dispatch_uid="eventsourcing_django.sqlite_wal"
)


class SQLiteDialect(Dialect):
    vendor = "sqlite"
    display_name = "SQLite"
    # Writes outside the caller's transaction take SQLite's write lock at once,
    # as eventsourcing.sqlite's writers do (they wait in its busy handler, not
    # halfway through the transaction).
    begin_write_statement = "BEGIN IMMEDIATE"

    def __init__(self, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)
        name = str(connection.settings_dict["NAME"])
        with _sqlite_write_locks_guard:
            self._write_lock = _sqlite_write_locks.setdefault(name, threading.RLock())
        self._raw_statements: dict[str, str] = {}
        # Connections made from now on are switched as they are made; one that
        # is open already, now (unless it is in a transaction: then the next).
        if connection.alias not in _wal_aliases:
            _wal_aliases.add(connection.alias)
            switch_to_wal(connection)

    def raw_statement(self, statement: str) -> str:
        # sqlite3 takes "?" (what Django's SQLite cursor converts on every call).
        try:
            return self._raw_statements[statement]
        except KeyError:
            raw = _PLACEHOLDER.sub("?", statement).replace("%%", "%")
            self._raw_statements[statement] = raw
            return raw

    def create_table_statements(self, kind: Kind, table: str) -> list[str]:
        t = self.qualify(table)
        if kind == "dcb":
            index = self.quote(f"{table}_type")
            return [
                f"CREATE TABLE IF NOT EXISTS {t} (position INTEGER NOT NULL "
                "PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, data BLOB NOT NULL, "
                "tags TEXT NOT NULL)",
                f"CREATE INDEX IF NOT EXISTS {index} ON {t} (type, position)",
            ]
        if kind == "dcb_tags":
            return [
                f"CREATE TABLE IF NOT EXISTS {t} (tag TEXT NOT NULL, "
                "position INTEGER NOT NULL, PRIMARY KEY (tag, position)) WITHOUT ROWID"
            ]
        if kind == "tracking":
            return [
                f"CREATE TABLE IF NOT EXISTS {t} (application_name TEXT NOT NULL "
                "PRIMARY KEY, notification_id INTEGER NOT NULL)"
            ]
        if kind == "events":
            # SQLite can only number rows through the primary key, so the
            # notification ID is the key and the aggregate sequence is unique.
            index = self.quote(f"{table}_aggregate_idx")
            return [
                f"CREATE TABLE IF NOT EXISTS {t} (notification_id INTEGER NOT NULL "
                "PRIMARY KEY AUTOINCREMENT, originator_id TEXT NOT NULL, "
                "originator_version INTEGER NOT NULL, topic TEXT NOT NULL, "
                "state BLOB NOT NULL)",
                f"CREATE UNIQUE INDEX IF NOT EXISTS {index} "
                f"ON {t} (originator_id, originator_version)",
            ]
        return [
            f"CREATE TABLE IF NOT EXISTS {t} (originator_id TEXT NOT NULL, "
            "originator_version INTEGER NOT NULL, topic TEXT NOT NULL, "
            "state BLOB NOT NULL, PRIMARY KEY (originator_id, originator_version)) "
            "WITHOUT ROWID"
        ]

    def truncate_table_statements(self, table: str) -> list[tuple[str, list[Any]]]:
        statements: list[tuple[str, list[Any]]] = [
            (f"DELETE FROM {self.qualify(table)}", [])
        ]
        # AUTOINCREMENT keeps its high-water mark in sqlite_sequence.
        statements.append(
            (
                "DELETE FROM sqlite_sequence WHERE name = %s AND EXISTS "
                "(SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence')",
                [table],
            )
        )
        return statements

    def table_exists(self, cursor: CursorWrapper, table: str) -> bool:
        cursor.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = %s", [table]
        )
        return cursor.fetchone() is not None

    # 4 parameters a row, and SQLite allows 32766 parameters a statement.
    max_insert_rows = 1000

    def dcb_statements(
        self, events_table: str, tags_table: str, lock_timeout: float
    ) -> DCBStatements:
        return SQLiteDCBStatements(self, events_table, tags_table, lock_timeout)

    def adapt_originator_id(self, originator_id: UUID | str) -> Any:
        # Django's UUIDField keeps 32 hex digits on SQLite; so does the library.
        return originator_id.hex if isinstance(originator_id, UUID) else originator_id

    def convert_originator_id(self, value: Any) -> UUID | str:
        return UUID(value) if self.originator_id_type == "uuid" else value

    @staticmethod
    def is_missing_table(exc: BaseException) -> bool:
        return str(exc).startswith("no such table")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._write_lock:
            yield

    def write_lock(self) -> contextlib.AbstractContextManager[None]:
        # SQLite has one writer at a time per file; waiting here instead of in
        # its busy handler keeps threads of this process from timing out.
        return self._locked()


class SQLiteDCBStatements(DCBStatements):
    # A statement that writes takes the database's write lock before it reads:
    # the check in the insert cannot be overtaken by another process, even in
    # a transaction begun DEFERRED (Django's default).
    condition_in_insert = True
