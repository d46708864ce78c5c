"""Riding out a database that goes away: discard, reconnect, retry.

Django checks a connection only around requests (``close_old_connections``), so a
script, a worker or a long-lived thread would keep a connection that a server
restart or failover broke, and every later call would fail on it. Recorders
therefore, outside the caller's ``transaction.atomic()`` block:

- discard this thread's connection after a connection-level error (the dialect
  says which errors are), so that the next call connects again;
- retry reads a few times, waiting a little longer each time;
- retry a write only when it failed while connecting, before any of it was sent:
  a write that broke mid-way may have been committed, so it is raised (as
  :class:`~eventsourcing_django.errors.ConnectionLostError`) for the caller to
  decide, never sent twice (docs/decisions.md says why).

Inside the caller's ``atomic()`` block nothing is discarded or retried: the
caller owns that transaction, and Django rolls it back and closes the connection
when the block exits.

Settings: ``EVENTSOURCING_RETRIES`` (default 5; 0 turns retrying off) and
``EVENTSOURCING_RETRY_DELAY`` (seconds before the first retry, default 0.1; each
wait doubles, up to :data:`MAX_RETRY_DELAY`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from django.db import utils as django_errors

from eventsourcing_django.conf import count_setting, seconds_setting
from eventsourcing_django.errors import ConnectionLostError, DatabaseUnavailableError

# Defined with the package's other errors; importable from here as before.
from eventsourcing_django.errors import (
    InvalidRetrySettingError as InvalidRetrySettingError,
)

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRIES_SETTING = "EVENTSOURCING_RETRIES"
RETRY_DELAY_SETTING = "EVENTSOURCING_RETRY_DELAY"
DEFAULT_RETRIES = 5
DEFAULT_RETRY_DELAY = 0.1
#: The longest wait between two attempts, whatever the first one: a server that
#: comes back is used again within about a second.
MAX_RETRY_DELAY = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    """How many times, and how long apart, a lost connection is tried again."""

    retries: int = DEFAULT_RETRIES
    delay: float = DEFAULT_RETRY_DELAY

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        """The policy the project's settings give (read on each call, cheaply)."""
        retries = count_setting(
            RETRIES_SETTING,
            DEFAULT_RETRIES,
            minimum=0,
            counts="retries, 0 or more (0 turns retrying off)",
            error=InvalidRetrySettingError,
        )
        delay = seconds_setting(
            RETRY_DELAY_SETTING,
            DEFAULT_RETRY_DELAY,
            zero_allowed=True,
            error=InvalidRetrySettingError,
        )
        return cls(retries=retries, delay=delay)

    def waits(self) -> Iterator[float]:
        """The waits before each retry: ``delay``, doubled each time, capped."""
        wait = self.delay
        for _ in range(self.retries):
            yield min(wait, max(self.delay, MAX_RETRY_DELAY))
            wait *= 2


class Backoff:
    """Waits for something that retries until told to stop (a subscription,
    a worker): from the policy's delay, doubling, at most :data:`MAX_RETRY_DELAY`.
    """

    def __init__(self, policy: RetryPolicy | None = None) -> None:
        self.first = (policy or RetryPolicy.from_settings()).delay
        self.longest = max(self.first, MAX_RETRY_DELAY)
        self._next = self.first
        #: When the current run of failures started (monotonic), or None.
        self.failing_since: float | None = None

    def failed(self) -> float:
        """Note a failure; return how long to wait before trying again."""
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        wait, self._next = self._next, min(self._next * 2, self.longest)
        return wait

    def succeeded(self) -> float | None:
        """Note a success; return how long the failures lasted, if there were any."""
        since, self.failing_since = self.failing_since, None
        self._next = self.first
        return None if since is None else time.monotonic() - since


def _one_line(error: BaseException) -> str:
    """The driver's message, which spans lines, on one line."""
    return " ".join(str(error).split())


def discard(connection: BaseDatabaseWrapper) -> None:
    """Close ``connection`` so that this thread's next use of it reconnects."""
    with contextlib.suppress(Exception):
        # A broken connection may fail to close; outside an atomic block Django
        # forgets it all the same.
        connection.close()


@contextlib.contextmanager
def discarding_broken_connection(
    connection: BaseDatabaseWrapper,
    is_connection_error: Callable[[BaseException], bool],
) -> Iterator[None]:
    """Around one recorder call: outside the caller's atomic block, discard the
    connection after a connection-level error and raise it as
    :class:`ConnectionLostError`; inside, let the error through unchanged."""
    in_callers_atomic = connection.in_atomic_block
    try:
        yield
    except django_errors.Error as e:
        if in_callers_atomic or not is_connection_error(e):
            raise
        discard(connection)
        msg = (
            f"Lost the connection to database {connection.alias!r} "
            f"({_one_line(e)}); it was closed, and the next call reconnects. A "
            "write that failed this way may or may not have been committed"
        )
        raise ConnectionLostError(msg) from e


def connect(
    connection: BaseDatabaseWrapper,
    is_connection_error: Callable[[BaseException], bool],
    is_closed: Callable[[BaseDatabaseWrapper], bool],
) -> None:
    """Make sure this thread's ``connection`` is open, before sending anything.

    A connection that the driver already knows to be closed or broken (another
    call in this thread broke it, outside our recorders) is discarded first.
    Failing to connect raises :class:`DatabaseUnavailableError`: nothing was sent.
    """
    if connection.in_atomic_block:
        return
    if connection.connection is not None and is_closed(connection):
        discard(connection)
    try:
        connection.ensure_connection()
    except django_errors.Error as e:
        if not is_connection_error(e):
            raise
        discard(connection)
        msg = (
            f"Cannot connect to database {connection.alias!r} ({_one_line(e)}). "
            "Check that the server is up and reachable; settings."
            f"{RETRIES_SETTING} and {RETRY_DELAY_SETTING} say how long each call "
            "tries"
        )
        raise DatabaseUnavailableError(msg) from e


def with_retries(
    attempt: Callable[[], T],
    *,
    retry_on: tuple[type[BaseException], ...],
    what: str,
    policy: RetryPolicy | None = None,
) -> T:
    """Call ``attempt`` until it returns, retrying the errors in ``retry_on`` as
    long as the policy allows; the last error is raised."""
    waits: Iterator[float] | None = None
    while True:
        try:
            return attempt()
        except retry_on as e:
            if waits is None:  # Settings are read only when something failed.
                waits = (policy or RetryPolicy.from_settings()).waits()
            wait = next(waits, None)
            if wait is None:
                raise
            # Those who wait for the database (subscriptions, workers) log the
            # outage and the recovery; each retry is a detail.
            logger.info("%s: %s; trying again in %.2f s", what, e, wait)
            time.sleep(wait)


def sleep_unless(stopped: Callable[[], bool], seconds: float) -> None:
    """Wait ``seconds``, or less if ``stopped()`` becomes true meanwhile."""
    deadline = time.monotonic() + seconds
    while not stopped() and time.monotonic() < deadline:
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


@contextlib.contextmanager
def reconnecting(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """Around Django calls of our own outside the recorders (a worker's
    heartbeat): connect if need be, and discard the connection if it is lost,
    raising :class:`DatabaseUnavailableError` or :class:`ConnectionLostError`."""
    from eventsourcing_django.dialects import dialect_for

    dialect = dialect_for(connection, schema=None)
    with discarding_broken_connection(connection, dialect.is_connection_error):
        connect(connection, dialect.is_connection_error, dialect.is_closed)
        yield
