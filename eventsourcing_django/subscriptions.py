"""Subscriptions to an application's notification log.

A subscription pulls new notifications in a thread of its own. It is woken by
writes of its recorder in this process, by PostgreSQL's NOTIFY on a channel
distinct per schema and table (in a second thread, on a connection of its own that
it closes when stopped), and in any case every ``poll_interval`` seconds, so a lost
notification, or a database without NOTIFY, cannot block it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import connections
from eventsourcing.persistence import ListenNotifySubscription

from eventsourcing_django.threads import keep_connections

if TYPE_CHECKING:
    from eventsourcing_django.recorders import DjangoApplicationRecorder


class DjangoSubscription(ListenNotifySubscription["DjangoApplicationRecorder"]):
    def __init__(
        self,
        recorder: DjangoApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        # Set before the base class starts the pull thread, which reads them.
        self.poll_interval = recorder.dialect.poll_interval
        self._listen_thread: threading.Thread | None = None
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        recorder._subscriptions.add(self)
        if recorder.dialect.can_listen and not self._has_been_stopped:
            self._listen_thread = threading.Thread(target=self._listen, daemon=True)
            self._listen_thread.start()

    def wake(self) -> None:
        """Make the pull thread look for new notifications now."""
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
                self._pull()
                while not self._has_been_stopped:
                    self._has_been_notified.wait(timeout=self.poll_interval)
                    self._pull()
            except BaseException as e:
                if self._thread_error is None:
                    self._thread_error = e
                self.stop()

    def _listen(self) -> None:
        dialect = self._recorder.dialect
        # This thread's own Django connection: LISTEN is per session.
        connection = connections[self._recorder.using]
        try:
            with connection.cursor() as cursor:
                cursor.execute(dialect.listen_statement(self._recorder.channel))
            # Anything written before LISTEN took effect is found by this pull.
            self.wake()
            raw = connection.connection
            while not self._has_been_stopped:
                if dialect.wait_for_notify(raw, timeout=0.1):
                    self.wake()
        except BaseException as e:
            if self._thread_error is None:
                self._thread_error = e
            self.stop()
        finally:
            connection.close()
