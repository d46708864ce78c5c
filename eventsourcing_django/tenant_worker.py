"""One worker process for a projection in every tenant schema (django-tenants).

``run_projections NAME --all-tenants`` runs here. Its database connections are
bounded whatever the number of tenants: the main thread (tenant discovery and
heartbeats), one listening thread that LISTENs to every tenant's channel on one
connection, and ``--threads`` processing threads (default 4), so ``threads + 2``.

- A tenant is *ready* when a notification names its channel, when it was
  discovered, and every ``poll_interval`` seconds (a lost NOTIFY cannot leave
  it behind). Processing threads take ready tenants in turn and apply **one
  page** each time, then put the tenant at the back of the line if it has more:
  a tenant with a large backlog does not starve the others.
- Tenants are discovered from django-tenants' tenant model every
  ``discover_interval`` seconds: new ones are followed without a restart, dropped
  ones let go (their channel unlistened, their applications forgotten).
- A tenant whose projection fails is logged and tried again after a growing
  wait (1 s, doubling, at most 60 s); the others go on.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.db import connections

from eventsourcing_django.errors import ConnectionLostError, DatabaseUnavailableError
from eventsourcing_django.projections import (
    BatchPolicy,
    LoadedProjection,
    ProjectionSpec,
)
from eventsourcing_django.retry import Backoff, discard
from eventsourcing_django.tables import ApplicationTables
from eventsourcing_django.threads import keep_connections

logger = logging.getLogger("eventsourcing_django.projections")

#: The longest wait before trying a failing tenant again.
MAX_TENANT_RETRY_DELAY = 60.0

_DATABASE_AWAY = (ConnectionLostError, DatabaseUnavailableError)


def tenant_alias() -> str:
    from django_tenants.utils import get_tenant_database_alias

    return str(get_tenant_database_alias())


def tenant_schemas() -> set[str]:
    """The schemas of the tenants (not public), read in the public schema."""
    from django_tenants.utils import (
        get_public_schema_name,
        get_tenant_model,
        schema_context,
    )

    with schema_context(get_public_schema_name()):
        names = (
            get_tenant_model()
            .objects.exclude(schema_name=get_public_schema_name())
            .values_list("schema_name", flat=True)
        )
        return set(names)


def unlisten_statement(quote: Any, channel: str) -> str:
    return f"UNLISTEN {quote(channel)}"


def notified_channels(raw: Any, timeout: float) -> list[str]:
    """The channels of the notifications that arrive on the driver connection
    ``raw`` within ``timeout`` seconds (those already there, at once)."""
    if hasattr(raw, "notifies") and callable(raw.notifies):  # psycopg 3
        channels = [n.channel for n in raw.notifies(timeout=timeout, stop_after=1)]
        if channels:
            channels += [n.channel for n in raw.notifies(timeout=0.0)]
        return channels
    import select  # psycopg2

    if select.select([raw], [], [], timeout) == ([], [], []):
        return []
    raw.poll()
    channels = [n.channel for n in raw.notifies]
    raw.notifies.clear()
    return channels


@dataclass
class _Tenant:
    schema: str
    channel: str
    projection: LoadedProjection | None = None
    failures: int = 0
    retry_at: float = 0.0
    last_error: str = ""


@dataclass
class _Line:
    """The tenants ready to be worked on, in turn, and those being worked on."""

    ready: collections.deque[str] = field(default_factory=collections.deque)
    queued: set[str] = field(default_factory=set)
    busy: set[str] = field(default_factory=set)
    #: Made ready while busy: back in line when its page is done.
    again: set[str] = field(default_factory=set)


class AllTenantsWorker:
    """Runs the projection ``spec`` for every tenant; see the module's docstring."""

    def __init__(
        self,
        spec: ProjectionSpec,
        stop: threading.Event,
        *,
        threads: int = 4,
        poll_interval: float = 5.0,
        discover_interval: float = 1.0,
    ) -> None:
        self.spec = spec
        self.stop = stop
        self.threads = threads
        self.poll_interval = poll_interval
        self.discover_interval = discover_interval
        self.alias = tenant_alias()
        self.events_table = ApplicationTables.for_application(
            spec.application_class().name
        ).events
        self.batch = BatchPolicy.from_settings()
        self.tenants: dict[str, _Tenant] = {}
        self._line = _Line()
        self._condition = threading.Condition()
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    # The main thread ------------------------------------------------------------

    def start(self) -> None:
        self.discover()
        self._threads.append(
            threading.Thread(target=self._listen, name="tenants-listen", daemon=True)
        )
        for n in range(self.threads):
            self._threads.append(
                threading.Thread(
                    target=self._process, name=f"tenants-process-{n}", daemon=True
                )
            )
        for thread in self._threads:
            thread.start()

    def is_alive(self) -> bool:
        return all(t.is_alive() for t in self._threads) and not self.errors

    def join(self) -> None:
        self.stop.set()
        with self._condition:
            self._condition.notify_all()
        for thread in self._threads:
            thread.join()
        for tenant in list(self.tenants.values()):
            self._let_go(tenant)

    def run_until_stopped(
        self, beat: Any, heartbeat: float, max_outage: float = 300.0
    ) -> None:
        """Discover tenants, poll them, retry failed ones and ``beat()``, until
        stopped or a thread fails; wait out the database's outages for up to
        ``max_outage`` seconds, then raise the last error."""
        next_discovery = next_poll = next_beat = time.monotonic()
        away_since: float | None = None
        while not self.stop.is_set() and self.is_alive():
            now = time.monotonic()
            try:
                if now >= next_discovery:
                    self.discover()
                    next_discovery = now + self.discover_interval
                if now >= next_beat:
                    beat()
                    next_beat = now + heartbeat
            except _DATABASE_AWAY as e:
                if away_since is None:
                    away_since = now
                    logger.warning("%s: database unavailable: %s", self.spec.name, e)
                if now - away_since >= max_outage:
                    raise
                self.stop.wait(1.0)
                continue
            away_since = None
            if now >= next_poll:
                for schema in list(self.tenants):
                    self.make_ready(schema)
                next_poll = now + self.poll_interval
            for tenant in list(self.tenants.values()):
                if tenant.failures and tenant.retry_at <= now:
                    self.make_ready(tenant.schema)
            self.stop.wait(0.1)

    def discover(self) -> None:
        """Follow new tenants, let go of dropped ones."""
        from eventsourcing_django.dialects import dialect_for

        schemas = tenant_schemas()
        connection = connections[self.alias]
        for schema in schemas - set(self.tenants):
            channel = dialect_for(connection, schema=schema).channel_name(
                self.events_table
            )
            with self._condition:
                self.tenants[schema] = _Tenant(schema, channel)
            logger.info("%s: following tenant %s", self.spec.name, schema)
            self.make_ready(schema)
        for schema in set(self.tenants) - schemas:
            with self._condition:
                tenant = self.tenants.pop(schema)
                self._line.again.discard(schema)
                busy = schema in self._line.busy
            logger.info("%s: tenant %s is gone; let go", self.spec.name, schema)
            if not busy:
                # (A thread working on it lets it go when its page is done.)
                self._let_go(tenant)

    def _let_go(self, tenant: _Tenant) -> None:
        from eventsourcing_django.tenants import forget_applications

        with self._condition:
            projection, tenant.projection = tenant.projection, None
        if projection is not None:
            projection.close()
        forget_applications(tenant.schema)

    def make_ready(self, schema: str | None) -> None:
        """Put a tenant in line, unless it is there, or waits after a failure."""
        with self._condition:
            tenant = self.tenants.get(schema) if schema is not None else None
            if tenant is None or schema is None:
                return
            if tenant.failures and tenant.retry_at > time.monotonic():
                return
            if schema in self._line.busy:
                self._line.again.add(schema)
            elif schema not in self._line.queued:
                self._line.ready.append(schema)
                self._line.queued.add(schema)
                self._condition.notify()

    # Processing threads ------------------------------------------------------------

    def _next(self) -> str | None:
        with self._condition:
            if not self._line.ready:
                self._condition.wait(timeout=0.5)
            if not self._line.ready or self.stop.is_set():
                return None
            schema = self._line.ready.popleft()
            self._line.queued.discard(schema)
            self._line.busy.add(schema)
            return schema

    def _done(self, schema: str, *, more: bool) -> None:
        with self._condition:
            self._line.busy.discard(schema)
            again = schema in self._line.again
            self._line.again.discard(schema)
        if more or again:
            self.make_ready(schema)

    def _process(self) -> None:
        with keep_connections():
            while not self.stop.is_set():
                schema = self._next()
                if schema is None:
                    continue
                tenant = self.tenants.get(schema)
                more = False
                try:
                    if tenant is not None:
                        more = self._step(tenant)
                except Exception as e:  # reported, retried later
                    assert tenant is not None
                    self._failed(tenant, e)
                else:
                    if tenant is not None and tenant.failures:
                        logger.warning(
                            "%s: tenant %s recovered after %d failures",
                            self.spec.name,
                            schema,
                            tenant.failures,
                        )
                        tenant.failures = 0
                finally:
                    self._done(schema, more=more)
                    with self._condition:
                        gone = self.tenants.get(schema) is not tenant
                    if gone and tenant is not None:
                        self._let_go(tenant)

    def _step(self, tenant: _Tenant) -> bool:
        """Apply one page of the tenant's events; whether there may be more."""
        if tenant.projection is None:
            tenant.projection = LoadedProjection(self.spec, schema=tenant.schema)
        projection = tenant.projection
        position, end = projection.position(), projection.end()
        if position >= end:
            return False
        notifications = projection.app.recorder.select_notifications(
            start=position,
            limit=self.batch.size,
            stop=end,
            topics=projection.topics,
            inclusive_of_start=False,
        )
        if not notifications:
            return False
        projection.apply(notifications, self.batch.seconds)
        return True

    def _failed(self, tenant: _Tenant, error: Exception) -> None:
        tenant.failures += 1
        delay = min(MAX_TENANT_RETRY_DELAY, 2.0 ** (tenant.failures - 1))
        tenant.retry_at = time.monotonic() + delay
        tenant.last_error = f"{type(error).__name__}: {error}"
        if tenant.projection is not None:
            # Built again on the next try: nothing cached survives a failure.
            tenant.projection.close()
            tenant.projection = None
        logger.error(
            "%s: tenant %s failed (%d in a row), trying again in %.0f s: %s",
            self.spec.name,
            tenant.schema,
            tenant.failures,
            delay,
            tenant.last_error,
        )

    # The listening thread ---------------------------------------------------------

    def _listen(self) -> None:
        from eventsourcing_django.dialects import dialect_for

        # This thread's own connection: LISTEN is per session.
        connection = connections[self.alias]
        dialect = dialect_for(connection, schema=None)
        listening: set[str] = set()
        backoff = Backoff()
        try:
            while not self.stop.is_set():
                try:
                    with self._condition:
                        channels = {t.channel: t.schema for t in self.tenants.values()}
                    with connection.cursor() as cursor:
                        for channel in set(channels) - listening:
                            cursor.execute(dialect.listen_statement(channel))
                            listening.add(channel)
                        for channel in listening - set(channels):
                            quote = connection.ops.quote_name
                            cursor.execute(unlisten_statement(quote, channel))
                            listening.discard(channel)
                    backoff.succeeded()
                    for channel in notified_channels(connection.connection, 0.2):
                        self.make_ready(channels.get(channel))
                except Exception as e:
                    if not dialect.is_connection_error(e):
                        raise
                    discard(connection)
                    listening.clear()
                    logger.warning("%s: listening: %s", self.spec.name, e)
                    self.stop.wait(backoff.failed())
                    # What was sent meanwhile is found by polling everyone now.
                    for schema in list(self.tenants):
                        self.make_ready(schema)
        except BaseException as e:
            logger.exception("%s: the listening thread failed", self.spec.name)
            self.errors.append(e)
        finally:
            connection.close()
