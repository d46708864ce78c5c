"""The infrastructure factory that the library finds through ``PERSISTENCE_MODULE``.

Set ``PERSISTENCE_MODULE=eventsourcing_django`` (or the legacy
``INFRASTRUCTURE_FACTORY=eventsourcing_django.factory:Factory``) in an
application's environment. The factory gives each application its own tables,
named after the application, on the database alias chosen by ``DJANGO_DB_ALIAS``
or by the database routers (``EVENTSOURCING_DATABASES``), in the PostgreSQL schema
chosen by ``DJANGO_SCHEMA`` or ``EVENTSOURCING_SCHEMAS``, if any. It is also a
``DCBInfrastructureFactory``: a ``DCBApplication`` (``eventsourcing.dcb``) gets its
recorder from :meth:`Factory.dcb_recorder` (see dcb.py).
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from django.db import connections
from eventsourcing.dcb.persistence import DCBInfrastructureFactory
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic, strtobool

from eventsourcing_django.builder import OriginatorIDType
from eventsourcing_django.conf import schema_for_application, tenant_schema
from eventsourcing_django.dcb import DjangoDCBRecorder
from eventsourcing_django.errors import check_database_alias
from eventsourcing_django.recorders import (
    DjangoAggregateRecorder,
    DjangoApplicationRecorder,
    DjangoProcessRecorder,
    DjangoRecorder,
    DjangoTrackingRecorder,
)
from eventsourcing_django.tables import ApplicationTables, check_schema_name

TDjangoTrackingRecorder = TypeVar(
    "TDjangoTrackingRecorder", bound=DjangoTrackingRecorder
)
R = TypeVar("R", bound=DjangoRecorder)


class Factory(
    InfrastructureFactory[DjangoTrackingRecorder],
    DCBInfrastructureFactory[DjangoTrackingRecorder],
):
    """Builds recorders that store one application's events through Django,
    for ordinary applications and for DCB applications (``eventsourcing.dcb``)."""

    DJANGO_DB_ALIAS = "DJANGO_DB_ALIAS"
    DJANGO_SCHEMA = "DJANGO_SCHEMA"
    DJANGO_LOCK_TIMEOUT = "DJANGO_LOCK_TIMEOUT"
    CREATE_TABLE = "CREATE_TABLE"
    ORIGINATOR_ID_TYPE = "ORIGINATOR_ID_TYPE"

    aggregate_recorder_class = DjangoAggregateRecorder
    application_recorder_class = DjangoApplicationRecorder
    tracking_recorder_class = DjangoTrackingRecorder
    process_recorder_class = DjangoProcessRecorder
    dcb_recorder_class = DjangoDCBRecorder

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        # Check everything before any recorder touches a database.
        self.tables = ApplicationTables.for_application(self.env.name)
        self.lock_timeout = self._env_lock_timeout()
        self.originator_id_type = self._env_originator_id_type()
        # The application's env wins over the project's settings; with
        # django-tenants, the tenant's schema at construction (see _construct).
        self.schema: str | None = (
            self.env.get(self.DJANGO_SCHEMA)
            or schema_for_application(self.env.name)
            or None
        )
        if self.schema is not None:
            check_schema_name(self.schema)

    def _env_lock_timeout(self) -> float:
        value = self.env.get(self.DJANGO_LOCK_TIMEOUT) or "0"
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not seconds >= 0:
            msg = (
                f"{self.DJANGO_LOCK_TIMEOUT} of application {self.env.name!r} must "
                f"be a number of seconds, 0 or more (0 waits forever), got {value!r}"
            )
            raise ValueError(msg)
        return seconds

    def _env_originator_id_type(self) -> OriginatorIDType:
        value = (self.env.get(self.ORIGINATOR_ID_TYPE) or "uuid").lower()
        if value not in ("uuid", "text"):
            msg = (
                f"{self.ORIGINATOR_ID_TYPE} of application {self.env.name!r} must "
                f"be 'uuid' or 'text', got {value!r}"
            )
            raise ValueError(msg)
        return cast("OriginatorIDType", value)

    def env_create_table(self) -> bool:
        return strtobool(self.env.get(self.CREATE_TABLE) or "yes")

    def database_alias(self) -> str:
        """The alias of this application's tables: env, then routers, then default.

        An alias not in settings.DATABASES is refused with an
        :class:`~eventsourcing_django.errors.UnknownDatabaseError` that names the
        env key, setting or router it came from.
        """
        alias = self.env.get(self.DJANGO_DB_ALIAS)
        if alias:
            return check_database_alias(
                alias,
                application_name=self.env.name,
                source=(
                    f"the env key {self.DJANGO_DB_ALIAS} of application "
                    f"{self.env.name!r}"
                ),
            )
        from eventsourcing_django.routers import routed_alias

        return routed_alias(self.env.name, schema=self.schema)

    def _construct(self, cls: type[R], **kwargs: Any) -> R:
        using = self.database_alias()
        schema = self.schema or tenant_schema(connections[using])
        recorder = cls(
            self.env.name,
            using=using,
            schema=schema,
            lock_timeout=self.lock_timeout,
            originator_id_type=self.originator_id_type,
            **kwargs,
        )
        if self.env_create_table():
            recorder.create_table()
        return recorder

    def _topic_class(self, key: str, default: type[R], base: type[Any]) -> type[R]:
        topic = self.env.get(key)
        if not topic:
            return default
        cls = resolve_topic(topic)
        if not (isinstance(cls, type) and issubclass(cls, base)):
            msg = f"{key} {topic!r} is not a subclass of {base.__qualname__}"
            raise TypeError(msg)
        return cast("type[R]", cls)

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return self._construct(type(self).aggregate_recorder_class, purpose=purpose)

    def application_recorder(self) -> ApplicationRecorder:
        cls = self._topic_class(
            self.APPLICATION_RECORDER_TOPIC,
            type(self).application_recorder_class,
            DjangoApplicationRecorder,
        )
        return self._construct(cls)

    def tracking_recorder(
        self, tracking_recorder_class: type[TDjangoTrackingRecorder] | None = None
    ) -> TDjangoTrackingRecorder:
        if tracking_recorder_class is None:
            cls: type[Any] = self._topic_class(
                self.TRACKING_RECORDER_TOPIC,
                type(self).tracking_recorder_class,
                DjangoTrackingRecorder,
            )
        elif issubclass(tracking_recorder_class, DjangoTrackingRecorder):
            cls = tracking_recorder_class
        else:
            msg = (
                f"{tracking_recorder_class.__qualname__} is not a subclass of "
                "DjangoTrackingRecorder, so it cannot store tracking through Django"
            )
            raise TypeError(msg)
        return cast("TDjangoTrackingRecorder", self._construct(cls))

    def process_recorder(self) -> ProcessRecorder:
        cls = self._topic_class(
            self.PROCESS_RECORDER_TOPIC,
            type(self).process_recorder_class,
            DjangoProcessRecorder,
        )
        return self._construct(cls)

    def dcb_recorder(self) -> DjangoDCBRecorder:
        """The recorder of a DCB application's tagged events (``<name>_dcb``)."""
        return self._construct(type(self).dcb_recorder_class)


__all__ = ["Factory"]
