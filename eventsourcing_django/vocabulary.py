"""The words every module shares: the kinds of table, the types of originator ID."""

from __future__ import annotations

from typing import Literal

#: What an application table holds.
Kind = Literal["events", "snapshots", "tracking"]

#: Every kind, in the order tables are created and listed.
KINDS: tuple[Kind, ...] = ("events", "snapshots", "tracking")

#: The column type of ``originator_id`` (``ORIGINATOR_ID_TYPE``).
OriginatorIDType = Literal["uuid", "text"]
