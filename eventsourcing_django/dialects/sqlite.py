"""SQLite: one writer per file, serialized in this process; no schemas."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing_django.dialects.base import Dialect
from eventsourcing_django.dialects.dcb import DCBStatements

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper

    from eventsourcing_django.vocabulary import Kind


_sqlite_write_locks: dict[str, threading.RLock] = {}
_sqlite_write_locks_guard = threading.Lock()


class SQLiteDialect(Dialect):
    vendor = "sqlite"
    display_name = "SQLite"

    def __init__(self, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)
        name = str(connection.settings_dict["NAME"])
        with _sqlite_write_locks_guard:
            self._write_lock = _sqlite_write_locks.setdefault(name, threading.RLock())

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
