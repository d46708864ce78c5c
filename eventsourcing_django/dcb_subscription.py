"""Subscriptions to a DCB application's events (``DCBRecorder.subscribe``).

As subscriptions to a notification log (subscriptions.py): a pull thread reads
what matches the query after the last position delivered, and waits to be woken
by appends of its recorder in this process, by PostgreSQL's NOTIFY (a second
thread listens on a channel distinct per schema and table), or in any case every
``poll_interval`` seconds, so a lost notification cannot block it. Both threads
close the connections they open when the subscription stops.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from django.db import connections
from eventsourcing.dcb.persistence import DCBListenNotifySubscription

from eventsourcing_django.errors import ConnectionLostError, DatabaseUnavailableError
from eventsourcing_django.retry import Backoff, discard, sleep_unless
from eventsourcing_django.threads import keep_connections

if TYPE_CHECKING:
    from eventsourcing.dcb.api import DCBQuery

    from eventsourcing_django.dcb import DjangoDCBRecorder


class DjangoDCBSubscription(DCBListenNotifySubscription["DjangoDCBRecorder"]):
    def __init__(
        self,
        recorder: DjangoDCBRecorder,
        query: DCBQuery | None = None,
        after: int | None = None,
    ) -> None:
        # Set before the base class starts the pull thread, which reads them.
        self.poll_interval = recorder.dialect.poll_interval
        self._listen_thread: threading.Thread | None = None
        super().__init__(recorder=recorder, query=query, after=after)
        recorder._subscriptions.add(self)
        if recorder.dialect.can_listen and not self._has_been_stopped:
            self._listen_thread = threading.Thread(target=self._listen, daemon=True)
            self._listen_thread.start()

    def wake(self) -> None:
        """Make the pull thread look for new events now."""
        self._has_been_notified.set()

    def stop(self) -> None:
        self._recorder._subscriptions.discard(self)
        super().stop()

    def __exit__(self, *args: object, **kwargs: Any) -> None:
        try:
            super().__exit__(*args, **kwargs)
        finally:
            if self._listen_thread is not None:
                self._listen_thread.join()

    def _loop_on_pull(self) -> None:
        # One connection for the life of the subscription, closed when it stops.
        with keep_connections():
            try:
                backoff = Backoff()
                while not self._has_been_stopped:
                    try:
                        # From the last position queued: nothing is delivered
                        # twice or skipped across a reconnection.
                        self._pull()
                    except (ConnectionLostError, DatabaseUnavailableError):
                        self._has_been_notified.wait(timeout=backoff.failed())
                        continue
                    backoff.succeeded()
                    self._has_been_notified.wait(timeout=self.poll_interval)
            except BaseException as e:
                if self._thread_error is None:
                    self._thread_error = e
                self.stop()

    def _listen(self) -> None:
        recorder = self._recorder
        dialect = recorder.dialect
        # This thread's own Django connection: LISTEN is per session.
        connection = connections[recorder.using]
        backoff = Backoff()
        try:
            while not self._has_been_stopped:
                try:
                    with connection.cursor() as cursor:
                        cursor.execute(dialect.listen_statement(recorder.channel))
                    backoff.succeeded()
                    # Anything appended before LISTEN took effect: pull now.
                    self.wake()
                    raw = connection.connection
                    while not self._has_been_stopped:
                        if dialect.wait_for_notify(raw, timeout=0.1):
                            self.wake()
                except Exception as e:
                    if not dialect.is_connection_error(e):
                        raise
                    discard(connection)
                    sleep_unless(lambda: self._has_been_stopped, backoff.failed())
        except BaseException as e:
            if self._thread_error is None:
                self._thread_error = e
            self.stop()
        finally:
            connection.close()
