"""The recorder of a DCB application (``eventsourcing.dcb``), through Django.

Tagged events go in ``<name>_dcb`` and their tags in ``<name>_dcb_tags`` (see
dialects/dcb.py), on the application's alias and schema, like the tables of our
other recorders. An append with a condition holds the same lock as an insert of
notifications (LOCK TABLE on PostgreSQL, the lock row on MariaDB, the write lock
on SQLite), checks the condition and inserts, in one transaction: two decisions
that read the same boundary cannot both append, and positions are contiguous and
commit in order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from django.db import transaction
from eventsourcing.dcb.api import (
    DCBAppendCondition,
    DCBEvent,
    DCBQuery,
    DCBReadResponse,
    DCBRecorder,
    DCBSequencedEvent,
)
from eventsourcing.dcb.popo import SimpleDCBReadResponse
from eventsourcing.persistence import IntegrityError, ProgrammingError

from eventsourcing_django.dialects.dcb import Row, Statement
from eventsourcing_django.recorders import DjangoRecorder

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper

    from eventsourcing_django.dcb_subscription import DjangoDCBSubscription
    from eventsourcing_django.vocabulary import Kind


class DjangoDCBRecorder(DjangoRecorder, DCBRecorder):
    """Stores a DCB application's tagged events in ``<name>_dcb``."""

    def __init__(self, application_name: str, **kwargs: Any) -> None:
        super().__init__(application_name, **kwargs)
        self.events_table = self.tables.dcb
        self.tags_table = self.tables.dcb_tags
        self.sql = self.dialect.dcb_statements(
            self.events_table, self.tags_table, self.lock_timeout
        )
        # The lock statements, to send with the append in one round trip.
        self._lock_prefix = "".join(f"{s}; " for s in self.sql.lock_statements)
        self.channel = self.dialect.channel_name(self.events_table)
        self._subscriptions: set[DjangoDCBSubscription] = set()

    def _own_tables(self) -> list[tuple[Kind, str]]:
        return [("dcb", self.events_table), ("dcb_tags", self.tags_table)]

    # Reads -------------------------------------------------------------------

    def read(
        self,
        query: DCBQuery | None = None,
        *,
        after: int | None = None,
        limit: int | None = None,
    ) -> DCBReadResponse:
        items = query.items if query is not None else []
        if limit is None:
            statement, params = self.sql.select_with_head(items, after or 0)
        else:
            statement, params = self.sql.select(items, after or 0, limit)

        def read() -> list[Any]:
            with self._read() as cursor:
                cursor.execute(statement, params)
                rows: list[Any] = cursor.fetchall()
                return rows

        rows = self._retrying_reads(read)
        head = None
        if limit is None:
            # One row, the head's, has no type (see DCBStatements.select_with_head).
            # It comes last, and the events in order of position, unless a
            # database gives the union's rows in another order: then they are put
            # in order (one pass over the rows otherwise).
            rows = list(rows)  # mysqlclient gives a tuple
            last = rows.pop()
            if last[1] is not None or any(a[0] > b[0] for a, b in pairwise(rows)):
                rows.append(last)
                rows.sort(key=lambda r: (r[1] is None, r[0] or 0))
                last = rows.pop()
            head = last[0]
        events = [
            DCBSequencedEvent(
                event=DCBEvent(
                    type=row[1], data=bytes(row[2]), tags=json.loads(row[3])
                ),
                position=row[0],
            )
            for row in rows
        ]
        if events:
            head = max(head or 0, events[-1].position)
        return SimpleDCBReadResponse(events=iter(events), head=head)

    # Appends -----------------------------------------------------------------

    def append(
        self, events: Sequence[DCBEvent], condition: DCBAppendCondition | None = None
    ) -> int:
        """Append ``events``, unless an event after ``condition.after`` matches
        ``condition.fail_if_events_match`` (then raise the library's
        ``IntegrityError``); return the position of the last."""
        rows = self._rows(events)
        conflicts = None
        if condition is not None:
            conflicts = self.sql.conflicts(
                condition.fail_if_events_match.items, condition.after or 0
            )
        return self._retrying_connect(
            partial(self._append_once, events, rows, conflicts)
        )

    def _rows(self, events: Sequence[DCBEvent]) -> list[Row]:
        """The rows of ``events``, or a clear error before anything is written."""
        if not events:
            msg = f"Nothing to append to {self.application_name!r}: no events given"
            raise ProgrammingError(msg)
        longest = self.dialect.max_dcb_key_chars
        rows: list[Row] = []
        for event in events:
            keys = [event.type, *event.tags]
            if not all(isinstance(k, str) and k for k in keys):
                msg = (
                    f"An event of {self.application_name!r} needs a type and tags "
                    f"that are non-empty strings, got type {event.type!r} and "
                    f"tags {event.tags!r}"
                )
                raise ProgrammingError(msg)
            if longest is not None and max(len(k) for k in keys) > longest:
                msg = (
                    f"{self.dialect.display_name} (database {self.using!r}) takes "
                    f"types and tags of up to {longest} characters; an event of "
                    f"{self.application_name!r} has a longer one: {keys!r}"
                )
                raise ProgrammingError(msg)
            rows.append((event.type, bytes(event.data), json.dumps(event.tags)))
        return rows

    def _append_once(
        self,
        events: Sequence[DCBEvent],
        rows: list[Row],
        conflicts: Statement | None,
    ) -> int:
        with self._errors():
            connection = self.connection
            locks_in_query = self._locks_in_query(connection)
            if (
                locks_in_query
                and not connection.in_atomic_block
                and connection.get_autocommit()
            ):
                # Outside a transaction, the server runs the statements of one
                # query as one transaction and commits it: one round trip.
                with connection.cursor() as cursor:
                    position = self._append(
                        cursor, events, rows, conflicts, locks_in_query
                    )
                self._after_commit()
                return position
            # Inside the caller's atomic block, the events are theirs to commit.
            outer = connection.in_atomic_block
            with self._transaction() as cursor:
                position = self._append(cursor, events, rows, conflicts, locks_in_query)
                if outer:
                    transaction.on_commit(self._after_commit, using=self.using)
            if not outer:
                self._after_commit()
            return position

    def _locks_in_query(self, connection: BaseDatabaseWrapper) -> bool:
        """Whether the lock statements go in the append's query, ahead of it (one
        execute), rather than one execute each: asked once per append, of the
        driver's connection (opened, if need be)."""
        if not (self.sql.appends_in_one_statement and self._lock_prefix):
            return False
        connection.ensure_connection()
        return self.dialect.sends_many_statements(connection.connection)

    def _append(
        self,
        cursor: CursorWrapper,
        events: Sequence[DCBEvent],
        rows: list[Row],
        conflicts: Statement | None,
        locks_in_query: bool,
    ) -> int:
        prefix = ""
        if locks_in_query:
            prefix = self._lock_prefix
        else:
            for statement in self.sql.lock_statements:
                cursor.execute(statement)
        if self.sql.appends_in_one_statement:
            statement, params = self.sql.append(rows, conflicts)
            cursor.execute(prefix + statement, params)
            if prefix:
                self.dialect.to_last_result(cursor.cursor)
            row = cursor.fetchone()
            if row is None or row[0] is None:
                raise self._condition_failed()
            return int(row[0])
        return self._append_in_steps(cursor, events, rows, conflicts)

    def _append_in_steps(
        self,
        cursor: CursorWrapper,
        events: Sequence[DCBEvent],
        rows: list[Row],
        conflicts: Statement | None,
    ) -> int:
        """Check, insert the events, then their tags (the lock is held)."""
        if conflicts is not None and not self.sql.condition_in_insert:
            check, params = self.sql.check(conflicts)
            cursor.execute(check, params)
            row = cursor.fetchone()
            if row is not None and row[0]:
                raise self._condition_failed()
            conflicts = None
        positions: list[int] = []
        step = self.dialect.max_insert_rows
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            params = [value for r in chunk for value in r]
            if conflicts is not None:
                params += conflicts[1]
            cursor.execute(self.sql.insert_events(chunk, conflicts), params)
            # Positions are issued in insert order; rows may come back in any.
            inserted = sorted(r[0] for r in cursor.fetchall())
            if conflicts is not None and not inserted:
                raise self._condition_failed()
            conflicts = None
            positions += inserted
        tag_rows = [
            (tag, position)
            for position, event in zip(positions, events, strict=True)
            for tag in dict.fromkeys(event.tags)
        ]
        step = max(1, step * 3 // 2)
        for start in range(0, len(tag_rows), step):
            chunk_tags = tag_rows[start : start + step]
            cursor.execute(
                self.sql.insert_tags(len(chunk_tags)),
                [value for r in chunk_tags for value in r],
            )
        return positions[-1]

    def _condition_failed(self) -> IntegrityError:
        return IntegrityError(
            f"Append condition failed: events of {self.application_name!r} that "
            "match the query were appended after the given position"
        )

    def _after_commit(self) -> None:
        """Wake subscriptions in this process (other sessions are woken by the
        NOTIFY among the dialect's lock statements, where it has one)."""
        for subscription in list(self._subscriptions):
            subscription.wake()

    def subscribe(
        self, query: DCBQuery | None = None, *, after: int | None = None
    ) -> DjangoDCBSubscription:
        from eventsourcing_django.dcb_subscription import DjangoDCBSubscription

        return DjangoDCBSubscription(self, query=query, after=after)


__all__ = ["DjangoDCBRecorder"]
