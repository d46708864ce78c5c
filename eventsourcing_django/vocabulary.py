"""The words every module shares: the kinds of table, the types of originator ID."""

from __future__ import annotations

from typing import Literal

#: What an application table holds: "dcb" a DCB application's tagged events
#: (eventsourcing.dcb), "dcb_tags" their tags, one row per tag and event.
Kind = Literal["events", "snapshots", "tracking", "dcb", "dcb_tags"]

#: Every kind of an ordinary application, in the order tables are created.
KINDS: tuple[Kind, ...] = ("events", "snapshots", "tracking")

#: The kinds of a DCB application's tables, in the order they are created.
DCB_KINDS: tuple[Kind, ...] = ("dcb", "dcb_tags")

#: The column type of ``originator_id`` (``ORIGINATOR_ID_TYPE``).
OriginatorIDType = Literal["uuid", "text"]
