"""eventsourcing-django 0.x as it was, for the tests of the upgrade.

Its shared tables are made by the DDL its ``0001_initial`` migration produced
(Django 3.2's, on each vendor: ``bigserial`` IDs on PostgreSQL, ``integer ...
AUTOINCREMENT`` on SQLite, where a ``UUIDField`` is ``char(32)``), and rows are
written as its recorders wrote them: one ``save()`` per event under ``LOCK TABLE``,
the notification ID from the one sequence of all applications, one tracking row
per processed notification. Applications run on it through
``INFRASTRUCTURE_FACTORY=tests.legacy:LegacyFactory``, with ``LEGACY_DB_ALIAS``
naming the alias.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from django.apps.registry import Apps
from django.db import connections, models, transaction
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    Notification,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.utils import Environment, EnvType

SHARED_TABLES = ("stored_events", "snapshots", "notification_tracking")

DDL = {
    "postgresql": [
        'CREATE TABLE "stored_events" ("id" bigserial NOT NULL PRIMARY KEY, '
        '"application_name" varchar(32) NOT NULL, "originator_id" uuid NOT NULL, '
        '"originator_version" bigint NOT NULL, "topic" text NOT NULL, '
        '"state" bytea NOT NULL)',
        'CREATE TABLE "snapshots" ("uid" bigserial NOT NULL PRIMARY KEY, '
        '"application_name" varchar(32) NOT NULL, "originator_id" uuid NOT NULL, '
        '"originator_version" bigint NOT NULL, "topic" text NOT NULL, '
        '"state" bytea NOT NULL)',
        'CREATE TABLE "notification_tracking" ("uid" bigserial NOT NULL PRIMARY '
        'KEY, "application_name" varchar(32) NOT NULL, '
        '"upstream_application_name" varchar(32) NOT NULL, '
        '"notification_id" bigint NOT NULL)',
        'ALTER TABLE "stored_events" ADD CONSTRAINT '
        '"stored_events_application_name_id_46c5b0b7_uniq" '
        'UNIQUE ("application_name", "id")',
        'ALTER TABLE "stored_events" ADD CONSTRAINT '
        '"stored_events_application_name_origi_5e5a6f7c_uniq" '
        'UNIQUE ("application_name", "originator_id", "originator_version")',
        'ALTER TABLE "snapshots" ADD CONSTRAINT '
        '"snapshots_application_name_origi_0a4b7cf5_uniq" '
        'UNIQUE ("application_name", "originator_id", "originator_version")',
        'ALTER TABLE "notification_tracking" ADD CONSTRAINT '
        '"notification_tracking_application_name_u_6f1b3c1e_uniq" UNIQUE '
        '("application_name", "upstream_application_name", "notification_id")',
    ],
    "sqlite": [
        'CREATE TABLE "stored_events" ("id" integer NOT NULL PRIMARY KEY '
        'AUTOINCREMENT, "application_name" varchar(32) NOT NULL, '
        '"originator_id" char(32) NOT NULL, "originator_version" bigint NOT NULL, '
        '"topic" text NOT NULL, "state" BLOB NOT NULL)',
        'CREATE TABLE "snapshots" ("uid" integer NOT NULL PRIMARY KEY '
        'AUTOINCREMENT, "application_name" varchar(32) NOT NULL, '
        '"originator_id" char(32) NOT NULL, "originator_version" bigint NOT NULL, '
        '"topic" text NOT NULL, "state" BLOB NOT NULL)',
        'CREATE TABLE "notification_tracking" ("uid" integer NOT NULL PRIMARY KEY '
        'AUTOINCREMENT, "application_name" varchar(32) NOT NULL, '
        '"upstream_application_name" varchar(32) NOT NULL, '
        '"notification_id" bigint NOT NULL)',
        'CREATE UNIQUE INDEX "stored_events_application_name_id_46c5b0b7_uniq" '
        'ON "stored_events" ("application_name", "id")',
        'CREATE UNIQUE INDEX "stored_events_application_name_origi_5e5a6f7c_uniq" '
        'ON "stored_events" ("application_name", "originator_id", '
        '"originator_version")',
        'CREATE UNIQUE INDEX "snapshots_application_name_origi_0a4b7cf5_uniq" ON '
        '"snapshots" ("application_name", "originator_id", "originator_version")',
        'CREATE UNIQUE INDEX "notification_tracking_application_name_u_6f1b3c1e_'
        'uniq" ON "notification_tracking" ("application_name", '
        '"upstream_application_name", "notification_id")',
    ],
}


def create_shared_tables(alias: str = "default") -> None:
    connection = connections[alias]
    with connection.cursor() as cursor:
        for statement in DDL[connection.vendor]:
            cursor.execute(statement)


def drop_shared_tables(alias: str = "default") -> None:
    connection = connections[alias]
    with connection.cursor() as cursor:
        for table in SHARED_TABLES:
            cursor.execute(f'DROP TABLE IF EXISTS "{table}"')


def shared_tables(alias: str = "default") -> set[str]:
    connection = connections[alias]
    with connection.cursor() as cursor:
        return set(SHARED_TABLES) & set(connection.introspection.table_names(cursor))


# The models of 0.x (its models.py), away from Django's app registry.
legacy_apps = Apps()


class StoredEventRecord(models.Model):
    id = models.BigAutoField(primary_key=True)
    application_name = models.CharField(max_length=32)
    originator_id = models.UUIDField()
    originator_version = models.BigIntegerField()
    topic = models.TextField()
    state = models.BinaryField()

    class Meta:
        apps = legacy_apps
        app_label = "eventsourcing_django_0x"
        db_table = "stored_events"
        managed = False


class SnapshotRecord(models.Model):
    uid = models.BigAutoField(primary_key=True)
    application_name = models.CharField(max_length=32)
    originator_id = models.UUIDField()
    originator_version = models.BigIntegerField()
    topic = models.TextField()
    state = models.BinaryField()

    class Meta:
        apps = legacy_apps
        app_label = "eventsourcing_django_0x"
        db_table = "snapshots"
        managed = False


class NotificationTrackingRecord(models.Model):
    uid = models.BigAutoField(primary_key=True)
    application_name = models.CharField(max_length=32)
    upstream_application_name = models.CharField(max_length=32)
    notification_id = models.BigIntegerField()

    class Meta:
        apps = legacy_apps
        app_label = "eventsourcing_django_0x"
        db_table = "notification_tracking"
        managed = False


Record = StoredEventRecord | SnapshotRecord


class LegacyAggregateRecorder(AggregateRecorder):
    def __init__(self, application_name: str, model: type[Record], using: str) -> None:
        self.application_name = application_name
        self.model = model
        self.using = using

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self._insert(stored_events, **kwargs)
        return None

    def _insert(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> list[int]:
        with transaction.atomic(using=self.using):
            connection = connections[self.using]
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"LOCK TABLE {self.model._meta.db_table} IN EXCLUSIVE MODE"
                    )
            return self._insert_events(stored_events, **kwargs)

    def _insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> list[int]:
        ids = []
        for e in stored_events:
            record = self.model(
                application_name=self.application_name,
                originator_id=e.originator_id,
                originator_version=e.originator_version,
                topic=e.topic,
                state=e.state,
            )
            record.save(using=self.using)
            ids.append(record.pk)
        return ids

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        q = self.model.objects.using(self.using).filter(
            application_name=self.application_name, originator_id=originator_id
        )
        if gt is not None:
            q = q.filter(originator_version__gt=gt)
        if lte is not None:
            q = q.filter(originator_version__lte=lte)
        q = q.order_by(("-" if desc else "") + "originator_version")
        if limit is not None:
            q = q[:limit]
        return [
            StoredEvent(r.originator_id, r.originator_version, r.topic, bytes(r.state))
            for r in q
        ]


class LegacyApplicationRecorder(LegacyAggregateRecorder, ApplicationRecorder):
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return self._insert(stored_events, **kwargs)

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        q = StoredEventRecord.objects.using(self.using).filter(
            application_name=self.application_name
        )
        if start is not None:
            q = (
                q.filter(id__gte=start)
                if inclusive_of_start
                else q.filter(id__gt=start)
            )
        if stop is not None:
            q = q.filter(id__lte=stop)
        if topics:
            q = q.filter(topic__in=topics)
        return [
            Notification(
                id=r.id,
                originator_id=r.originator_id,
                originator_version=r.originator_version,
                topic=r.topic,
                state=bytes(r.state),
            )
            for r in q.order_by("id")[:limit]
        ]

    def max_notification_id(self) -> int | None:
        q = StoredEventRecord.objects.using(self.using).filter(
            application_name=self.application_name
        )
        row = q.order_by("-id").first()
        return None if row is None else row.id

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        raise NotImplementedError


class LegacyProcessRecorder(LegacyApplicationRecorder, ProcessRecorder):
    def _insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> list[int]:
        ids = super()._insert_events(stored_events, **kwargs)
        tracking: Tracking | None = kwargs.get("tracking")
        if tracking is not None:
            NotificationTrackingRecord(
                application_name=self.application_name,
                upstream_application_name=tracking.application_name,
                notification_id=tracking.notification_id,
            ).save(using=self.using)
        return ids

    def max_tracking_id(self, application_name: str) -> int | None:
        row = (
            NotificationTrackingRecord.objects.using(self.using)
            .filter(
                application_name=self.application_name,
                upstream_application_name=application_name,
            )
            .order_by("-notification_id")
            .first()
        )
        return None if row is None else row.notification_id

    def insert_tracking(self, tracking: Tracking) -> None:
        raise NotImplementedError


class LegacyFactory(InfrastructureFactory[TrackingRecorder]):
    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        self.using = self.env.get("LEGACY_DB_ALIAS") or "default"

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        model = StoredEventRecord if purpose == "events" else SnapshotRecord
        return LegacyAggregateRecorder(self.env.name, model, self.using)

    def application_recorder(self) -> ApplicationRecorder:
        return LegacyApplicationRecorder(self.env.name, StoredEventRecord, self.using)

    def process_recorder(self) -> ProcessRecorder:
        return LegacyProcessRecorder(self.env.name, StoredEventRecord, self.using)

    def tracking_recorder(self, tracking_recorder_class: Any = None) -> Any:
        raise NotImplementedError


def insert_shared_rows(
    alias: str,
    application_name: str,
    stored_events: Sequence[StoredEvent] = (),
    snapshots: Sequence[StoredEvent] = (),
) -> None:
    """Rows written at once, for volume (the same columns the recorders fill)."""
    for model, events in (
        (StoredEventRecord, stored_events),
        (SnapshotRecord, snapshots),
    ):
        model.objects.using(alias).bulk_create(
            [
                model(
                    application_name=application_name,
                    originator_id=e.originator_id,
                    originator_version=e.originator_version,
                    topic=e.topic,
                    state=e.state,
                )
                for e in events
            ],
            batch_size=500,
        )
