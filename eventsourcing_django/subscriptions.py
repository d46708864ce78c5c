"""Subscriptions to an application's notification log.

A subscription pulls new notifications in a thread of its own. It is woken by
writes of its recorder in this process, by PostgreSQL's NOTIFY on a channel
distinct per schema and table (in a second thread, on a connection of its own that
it closes when stopped), and in any case every ``poll_interval`` seconds, so a lost
notification, or a database without NOTIFY, cannot block it.

When the database goes away (a restart, a failover), both threads reconnect with
a growing wait (see retry.py) until the subscription is stopped, and the pull
resumes after the last notification it delivered: every notification is
delivered once, in order, across the outage. Each outage and recovery is logged
(logger ``eventsourcing_django.subscriptions``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from django.db import connections
from eventsourcing.persistence import ListenNotifySubscription

from eventsourcing_django.errors import ConnectionLostError, DatabaseUnavailableError
from eventsourcing_django.retry import Backoff, discard, sleep_unless
from eventsourcing_django.threads import keep_connections

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    from eventsourcing_django.recorders import DjangoApplicationRecorder

logger = logging.getLogger(__name__)


class PullsAndListens:
    """The threads of our subscriptions, over the library's base classes (of
    notification logs and of DCB applications): a pull thread that reconnects
    and resumes, and a LISTEN thread where the dialect can listen."""

    # Set by the library's base classes.
    _recorder: Any
    _has_been_notified: threading.Event
    _has_been_stopped: bool
    _thread_error: BaseException | None
    _listen_thread: threading.Thread | None
    _pull: Callable[[], None]
    poll_interval: float

    def _start_listening(self) -> None:
        """Register with the recorder, and start the LISTEN thread if the
        dialect has LISTEN (call at the end of ``__init__``)."""
        self._recorder._subscriptions.add(self)
        if self._recorder.dialect.can_listen and not self._has_been_stopped:
            self._listen_thread = threading.Thread(target=self._listen, daemon=True)
            self._listen_thread.start()

    def wake(self) -> None:
        """Make the pull thread look for new events now."""
        self._has_been_notified.set()

    def stop(self) -> None:
        self._recorder._subscriptions.discard(self)
        super().stop()  # type: ignore[misc]

    def __exit__(self, *args: object, **kwargs: Any) -> None:
        try:
            super().__exit__(*args, **kwargs)  # type: ignore[misc]
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
                        # From the last notification queued: nothing is
                        # delivered twice or skipped across a reconnection.
                        self._pull()
                    except (ConnectionLostError, DatabaseUnavailableError) as e:
                        self._outage(backoff, "pull", e)
                        continue
                    self._recovered(backoff, "pull")
                    self._has_been_notified.wait(timeout=self.poll_interval)
            except BaseException as e:
                if self._thread_error is None:
                    self._thread_error = e
                self.stop()

    def _listen(self) -> None:
        dialect = self._recorder.dialect
        # This thread's own Django connection: LISTEN is per session.
        connection = connections[self._recorder.using]
        backoff = Backoff()
        try:
            while not self._has_been_stopped:
                try:
                    self._listen_until_stopped(connection, backoff)
                except Exception as e:
                    if not dialect.is_connection_error(e):
                        raise
                    discard(connection)
                    self._outage(backoff, "listen", e)
        except BaseException as e:
            if self._thread_error is None:
                self._thread_error = e
            self.stop()
        finally:
            connection.close()

    def _listen_until_stopped(
        self, connection: BaseDatabaseWrapper, backoff: Backoff
    ) -> None:
        dialect = self._recorder.dialect
        with connection.cursor() as cursor:
            cursor.execute(dialect.listen_statement(self._recorder.channel))
        self._recovered(backoff, "listen")
        # Anything written before LISTEN took effect is found by this pull.
        self.wake()
        raw = connection.connection
        while not self._has_been_stopped:
            if dialect.wait_for_notify(raw, timeout=0.1):
                self.wake()

    def _outage(self, backoff: Backoff, thread: str, error: BaseException) -> None:
        """Log a lost connection once per outage, and wait before trying again."""
        if backoff.failing_since is None:
            logger.warning(
                "Subscription to %r (%s): lost the database, reconnecting: %s",
                self._recorder.application_name,
                thread,
                error,
            )
        wait = backoff.failed()
        if thread == "pull":
            # A stop() sets this event too, and ends the wait at once.
            self._has_been_notified.wait(timeout=wait)
        else:
            sleep_unless(lambda: self._has_been_stopped, wait)

    def _recovered(self, backoff: Backoff, thread: str) -> None:
        lasted = backoff.succeeded()
        if lasted is not None:
            logger.warning(
                "Subscription to %r (%s): reconnected after %.1f s",
                self._recorder.application_name,
                thread,
                lasted,
            )


class DjangoSubscription(
    PullsAndListens, ListenNotifySubscription["DjangoApplicationRecorder"]
):
    def __init__(
        self,
        recorder: DjangoApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        # Set before the base class starts the pull thread, which reads them.
        self.poll_interval = recorder.dialect.poll_interval
        self._listen_thread = None
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._start_listening()
