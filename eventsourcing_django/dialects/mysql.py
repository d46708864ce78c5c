"""MariaDB 10.6+ through Django's ``mysql`` backend (see docs/decisions.md)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from django.db import utils as django_errors

from eventsourcing_django.dialects.base import TABLE_COMMENT_PREFIX, Dialect

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper

    from eventsourcing_django.vocabulary import Kind


#: One row per events table of a MariaDB database; a writer locks its table's row
#: until it commits (see MySQLDialect.lock_table_statements).
MYSQL_LOCK_TABLE = "eventsourcing_django_locks"


class MySQLDialect(Dialect):
    """MariaDB 10.6+ through Django's ``mysql`` backend (mysqlclient).

    No schemas (a database is MariaDB's schema), no LISTEN/NOTIFY (subscriptions
    poll), and DDL that commits implicitly (it cannot be rolled back).
    """

    vendor = "mysql"
    display_name = "MariaDB"
    # Django's cursor for mysqlclient raises some of the server's errors as
    # other classes (a NULL in a NOT NULL column as IntegrityError): keep it.
    short_path = False

    #: The oldest MariaDB these statements are written for (see the README).
    min_mariadb: ClassVar[tuple[int, int]] = (10, 6)

    def server_problem(self, connection: BaseDatabaseWrapper) -> str | None:
        # Django's mysql backend serves MySQL too, which has no
        # INSERT ... RETURNING; Django asks the server once per wrapper.
        mysql: Any = connection
        version = ".".join(map(str, mysql.mysql_version))
        oldest = ".".join(map(str, self.min_mariadb))
        if not mysql.mysql_is_mariadb:
            return (
                f"Database alias {self.alias!r} is MySQL {version}: "
                f"eventsourcing_django supports MariaDB {oldest} and later on "
                "Django's mysql backend, not MySQL (it has no INSERT ... "
                "RETURNING). Use MariaDB, PostgreSQL or SQLite for this alias."
            )
        if tuple(mysql.mysql_version[:2]) < self.min_mariadb:
            return (
                f"Database alias {self.alias!r} is MariaDB {version}: "
                f"eventsourcing_django needs MariaDB {oldest} or later. Upgrade "
                "the server, or use another database for this alias."
            )
        return None

    def lock_tracking_statement(self, table: str) -> str:
        # MariaDB has no UPDATE ... RETURNING: a locking read does the same.
        return (
            f"SELECT notification_id FROM {self.qualify(table)} "
            "WHERE application_name = %s FOR UPDATE"
        )

    def __init__(self, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)
        #: The tracking insert that follows each tracking update statement.
        self._tracking_inserts: dict[str, str] = {}

    #: utf8mb4 for any topic, binary collation so that originator IDs, topics
    #: and application names compare exactly, as on PostgreSQL.
    _TABLE_OPTIONS = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

    def _originator_id_column(self) -> str:
        if self.originator_id_type == "text":
            # TEXT cannot be a key without a prefix length.
            return "VARCHAR(255)"
        # The type Django's UUIDField gives (so our models read the column):
        # MariaDB's native UUID from 10.7, 32 hex digits before.
        features: Any = self.connection.features
        return "UUID" if features.has_native_uuid_field else "CHAR(32)"

    #: Types and tags are keys of indexes, which InnoDB bounds at 3072 bytes:
    #: VARCHAR(512) in utf8mb4 is at most 2048.
    max_dcb_key_chars = 512

    def _lock_table_statement(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.quote(MYSQL_LOCK_TABLE)} "
            "(name VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL "
            "PRIMARY KEY) ENGINE=InnoDB"
        )

    def create_table_statements(self, kind: Kind, table: str) -> list[str]:
        t = self.qualify(table)
        comment = f" COMMENT='{TABLE_COMMENT_PREFIX}{kind}'"
        if kind == "dcb":
            return [
                self._lock_table_statement(),
                f"CREATE TABLE IF NOT EXISTS {t} (position BIGINT NOT NULL "
                "AUTO_INCREMENT PRIMARY KEY, type VARCHAR(512) NOT NULL, "
                "data LONGBLOB NOT NULL, tags LONGTEXT NOT NULL, "
                "KEY type_position (type, position))" + self._TABLE_OPTIONS + comment,
            ]
        if kind == "dcb_tags":
            return [
                f"CREATE TABLE IF NOT EXISTS {t} (tag VARCHAR(512) NOT NULL, "
                "position BIGINT NOT NULL, PRIMARY KEY (tag, position))"
                + self._TABLE_OPTIONS
                + comment
            ]
        if kind == "tracking":
            return [
                f"CREATE TABLE IF NOT EXISTS {t} (application_name VARCHAR(255) "
                "NOT NULL PRIMARY KEY, notification_id BIGINT NOT NULL)"
                + self._TABLE_OPTIONS
                + comment
            ]
        columns = (
            f"originator_id {self._originator_id_column()} NOT NULL, "
            "originator_version BIGINT NOT NULL, topic TEXT NOT NULL, "
            "state LONGBLOB NOT NULL, "
        )
        if kind == "events":
            # AUTO_INCREMENT needs a key of its own; index names are per table.
            columns += (
                "notification_id BIGINT NOT NULL AUTO_INCREMENT, "
                "UNIQUE KEY notification_id (notification_id), "
            )
        statements = [
            f"CREATE TABLE IF NOT EXISTS {t} ({columns}"
            "PRIMARY KEY (originator_id, originator_version))"
            + self._TABLE_OPTIONS
            + comment
        ]
        if kind == "events":
            statements.insert(0, self._lock_table_statement())
        return statements

    def truncate_table_statements(self, table: str) -> list[tuple[str, list[Any]]]:
        # TRUNCATE restarts AUTO_INCREMENT at 1; like all DDL, it commits.
        return [(f"TRUNCATE TABLE {self.qualify(table)}", [])]

    def table_exists(self, cursor: CursorWrapper, table: str) -> bool:
        cursor.execute(
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = %s",
            [table],
        )
        return cursor.fetchone() is not None

    # 4 parameters a row; mysqlclient binds on the client, so the bound is the
    # server's max_allowed_packet (16 MiB by default), not a parameter count.
    max_insert_rows = 1000

    def lock_table_statements(self, table: str, lock_timeout: float) -> list[str]:
        # InnoDB has no transaction-scoped table lock (LOCK TABLES commits the
        # transaction and is session-scoped), so writers of one table take
        # turns on its row in the lock table: INSERT ... ON DUPLICATE KEY UPDATE
        # creates the row if need be and holds an exclusive lock on it until
        # commit or rollback. One row per table: other applications never wait.
        # The table name is a checked identifier ([A-Za-z0-9_]).
        statement = (
            f"INSERT INTO {self.quote(MYSQL_LOCK_TABLE)} (name) VALUES ('{table}') "
            "ON DUPLICATE KEY UPDATE name = name"
        )
        if lock_timeout > 0:
            # Whole seconds; PostgreSQL's 0 (wait for ever) is the server default
            # here (innodb_lock_wait_timeout, 50 s unless configured).
            seconds = max(1, math.ceil(lock_timeout))
            statement = (
                f"SET STATEMENT innodb_lock_wait_timeout = {seconds} FOR {statement}"
            )
        return [statement]

    def insert_tracking_statement(self, table: str) -> str:
        # No ON CONFLICT ... WHERE here: update the row if the ID advances, else
        # insert it if missing (see advance_tracking).
        t = self.qualify(table)
        update = (
            f"UPDATE {t} SET notification_id = %s "
            "WHERE application_name = %s AND notification_id < %s"
        )
        self._tracking_inserts[update] = (
            f"INSERT IGNORE INTO {t} (application_name, notification_id) "
            "VALUES (%s, %s)"
        )
        return update

    def advance_tracking(
        self, cursor: CursorWrapper, statement: str, name: str, notification_id: int
    ) -> bool:
        # Django connects with CLIENT_FOUND_ROWS: rowcount counts the rows the
        # WHERE matched, which are exactly those that advance.
        cursor.execute(statement, [notification_id, name, notification_id])
        if cursor.rowcount == 1:
            return True
        # No row to advance: a new one, unless one exists (at or past the ID).
        cursor.execute(self._tracking_inserts[statement], [name, notification_id])
        return bool(cursor.rowcount == 1)

    def adapt_originator_id(self, originator_id: UUID | str) -> Any:
        # 32 hex digits suit both CHAR(32) and the UUID type (which takes them
        # with or without hyphens).
        return originator_id.hex if isinstance(originator_id, UUID) else originator_id

    def convert_originator_id(self, value: Any) -> UUID | str:
        return UUID(value) if self.originator_id_type == "uuid" else value

    @staticmethod
    def is_missing_table(exc: BaseException) -> bool:
        cause = exc.__cause__ or exc
        return bool(cause.args) and cause.args[0] == _ER_NO_SUCH_TABLE

    def is_connection_error(self, exc: BaseException) -> bool:
        if isinstance(exc, django_errors.InterfaceError):
            return True  # "(0, '')": the connection is closed
        cause = exc.__cause__ if isinstance(exc, django_errors.Error) else exc
        if cause is None or not cause.args or not isinstance(cause.args[0], int):
            return False
        # Server errors (lock wait timeout 1205, deadlock 1213) leave the
        # connection usable; these mean it is gone or could not be made.
        return cause.args[0] in _MYSQL_DISCONNECT_ERRORS

    def is_closed(self, connection: BaseDatabaseWrapper) -> bool:
        raw = connection.connection
        return raw is not None and not getattr(raw, "open", True)


#: ER_NO_SUCH_TABLE ("Table ... doesn't exist").
_ER_NO_SUCH_TABLE = 1146
#: Can't connect (2002 socket, 2003 TCP), server has gone away (2006), lost
#: connection (2013, 2055), connection killed (1927), shutdown in progress
#: (1053), disconnected for inactivity (4031).
_MYSQL_DISCONNECT_ERRORS = frozenset({2002, 2003, 2006, 2013, 2055, 1927, 1053, 4031})
