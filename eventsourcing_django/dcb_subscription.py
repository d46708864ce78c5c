"""Subscriptions to a DCB application's events (``DCBRecorder.subscribe``).

As subscriptions to a notification log (subscriptions.py): a pull thread reads
what matches the query after the last position delivered, and waits to be woken
by appends of its recorder in this process, by PostgreSQL's NOTIFY (a second
thread listens on a channel distinct per schema and table), or in any case every
``poll_interval`` seconds, so a lost notification cannot block it. The threads
are those of subscriptions.py (``PullsAndListens``): they reconnect after an
outage, resume after the last position delivered, and close the connections
they open when the subscription stops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventsourcing.dcb.persistence import DCBListenNotifySubscription

from eventsourcing_django.subscriptions import PullsAndListens

if TYPE_CHECKING:
    from eventsourcing.dcb.api import DCBQuery

    from eventsourcing_django.dcb import DjangoDCBRecorder


class DjangoDCBSubscription(
    PullsAndListens, DCBListenNotifySubscription["DjangoDCBRecorder"]
):
    def __init__(
        self,
        recorder: DjangoDCBRecorder,
        query: DCBQuery | None = None,
        after: int | None = None,
    ) -> None:
        # Set before the base class starts the pull thread, which reads them.
        self.poll_interval = recorder.dialect.poll_interval
        self._listen_thread = None
        super().__init__(recorder=recorder, query=query, after=after)
        self._start_listening()
