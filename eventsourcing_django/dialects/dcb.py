"""The SQL of a DCB application's two tables (``eventsourcing.dcb``).

``<name>_dcb`` holds the tagged events, numbered by ``position``; its ``tags``
column keeps each event's tags in order, as a JSON list. ``<name>_dcb_tags`` has
one row per distinct tag of each event, with the primary key ``(tag, position)``:
a read by one tag is a range of that index, a read by two tags joins two ranges.

Queries follow ``eventsourcing.dcb.api.DCBRecorder.read``: an event matches a
query item if its type is one of the item's types (or the item has none) and it
has every tag of the item; it matches a query if it matches one of its items (or
the query has none). The statements compose per call, from the shape of the
query, with every value a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventsourcing.dcb.api import DCBQueryItem

    from eventsourcing_django.dialects.base import Dialect

#: A statement and its parameters.
Statement = tuple[str, list[Any]]

#: A row of ``<name>_dcb`` as inserted: type, data, tags as JSON.
Row = tuple[str, bytes, str]


def matches_everything(items: Sequence[DCBQueryItem]) -> bool:
    """Whether a query of ``items`` matches every event (no items, or an item
    with neither types nor tags)."""
    return not items or any(not i.types and not i.tags for i in items)


class DCBStatements:
    """The statements of one DCB application on one vendor.

    Portable SQL (PostgreSQL, SQLite, MariaDB 10.6+); a vendor's dialect may
    return a subclass from :meth:`Dialect.dcb_statements`.
    """

    #: Whether :meth:`append` does lock, condition and both inserts in one
    #: statement (after the lock statements).
    appends_in_one_statement = False
    #: Whether the condition goes in the insert (``INSERT ... SELECT ... WHERE
    #: NOT EXISTS``) rather than in a query before it: SQLite takes its write
    #: lock when a statement that writes starts, so a write first means no
    #: other writer can come between the check and the insert, whatever the
    #: transaction mode.
    condition_in_insert = False

    def __init__(
        self, dialect: Dialect, events_table: str, tags_table: str, lock_timeout: float
    ) -> None:
        self.dialect = dialect
        self.events = dialect.qualify(events_table)
        self.tags = dialect.qualify(tags_table)
        self.lock_statements = dialect.lock_table_statements(events_table, lock_timeout)
        self.max_position = f"SELECT MAX(position) FROM {self.events}"

    # Reads -------------------------------------------------------------------

    def select(
        self, items: Sequence[DCBQueryItem], after: int, limit: int | None
    ) -> Statement:
        """The events that match ``items`` after ``after``, in position order
        (columns: position, type, data, tags)."""
        columns = "e.position, e.type, e.data, e.tags"
        if matches_everything(items):
            statement = (
                f"SELECT {columns} FROM {self.events} e WHERE e.position > %s "
                "ORDER BY e.position"
            )
            params: list[Any] = [after]
        elif len(items) == 1 and items[0].tags:
            # One item with tags: walk the first tag's index range in order.
            statement, params = self._by_tags(items[0], after, columns)
            statement += " ORDER BY t0.position"
        else:
            positions, params = self._positions(items, after)
            statement = (
                f"SELECT {columns} FROM {self.events} e "
                f"WHERE e.position IN ({positions}) ORDER BY e.position"
            )
        if limit is not None:
            statement += " LIMIT %s"
            params.append(limit)
        return statement, params

    def select_with_head(self, items: Sequence[DCBQueryItem], after: int) -> Statement:
        """:meth:`select` without a limit, and a last row whose type is NULL and
        whose position is the last position of all (the head), in one
        statement: one round trip, and one snapshot for both."""
        statement, params = self.select(items, after, None)
        return (
            f"SELECT * FROM ({statement}) AS s UNION ALL "
            f"SELECT MAX(position), NULL, NULL, NULL FROM {self.events}",
            params,
        )

    def _by_tags(self, item: DCBQueryItem, after: int, columns: str) -> Statement:
        """Events with all the tags of ``item`` (and one of its types)."""
        first, *others = dict.fromkeys(item.tags)
        joins = "".join(
            f" JOIN {self.tags} t{n} ON t{n}.position = t0.position AND t{n}.tag = %s"
            for n in range(1, len(others) + 1)
        )
        params: list[Any] = list(others)
        if item.types or columns.startswith("e."):
            joins += f" JOIN {self.events} e ON e.position = t0.position"
        where = "t0.tag = %s AND t0.position > %s"
        params += [first, after]
        if item.types:
            where += f" AND e.type IN ({', '.join(['%s'] * len(item.types))})"
            params += item.types
        return f"SELECT {columns} FROM {self.tags} t0{joins} WHERE {where}", params

    def _by_types(self, item: DCBQueryItem, after: int) -> Statement:
        types = ", ".join(["%s"] * len(item.types))
        return (
            f"SELECT e.position FROM {self.events} e "
            f"WHERE e.type IN ({types}) AND e.position > %s",
            [*item.types, after],
        )

    def _positions(self, items: Sequence[DCBQueryItem], after: int) -> Statement:
        """The positions of events after ``after`` that match one of ``items``
        (none of which matches everything)."""
        parts: list[str] = []
        params: list[Any] = []
        for item in items:
            if item.tags:
                part, part_params = self._by_tags(item, after, "t0.position")
            else:
                part, part_params = self._by_types(item, after)
            parts.append(part)
            params += part_params
        return " UNION ".join(parts), params

    def conflicts(self, items: Sequence[DCBQueryItem], after: int) -> Statement:
        """A query that has rows if an event after ``after`` matches ``items``
        (for ``EXISTS``)."""
        if matches_everything(items):
            return f"SELECT 1 FROM {self.events} e WHERE e.position > %s", [after]
        return self._positions(items, after)

    # Appends -----------------------------------------------------------------

    def check(self, conflicts: Statement) -> Statement:
        """Whether the condition fails: one row, true if it does."""
        statement, params = conflicts
        return f"SELECT EXISTS ({statement})", params

    def insert_events(self, rows: Sequence[Row], conflicts: Statement | None) -> str:
        """Insert ``rows`` into ``<name>_dcb``, returning their positions; with
        ``conflicts``, only if it has no rows (parameters: the rows', then the
        conflict query's)."""
        values = ", ".join(["(%s, %s, %s)"] * len(rows))
        insert = f"INSERT INTO {self.events} (type, data, tags) "
        if conflicts is None:
            return insert + f"VALUES {values} RETURNING position"
        return (
            insert + f"SELECT * FROM (VALUES {values}) AS v "
            f"WHERE NOT EXISTS ({conflicts[0]}) RETURNING position"
        )

    def insert_tags(self, count: int) -> str:
        """Insert ``count`` (tag, position) rows into ``<name>_dcb_tags``."""
        values = ", ".join(["(%s, %s)"] * count)
        return f"INSERT INTO {self.tags} (tag, position) VALUES {values}"

    def append(self, rows: Sequence[Row], conflicts: Statement | None) -> Statement:
        """One statement that appends ``rows`` (unless ``conflicts`` has rows)
        and returns the last position, NULL if nothing was appended."""
        msg = f"{self.dialect.display_name} appends in several statements"
        raise NotImplementedError(msg)
