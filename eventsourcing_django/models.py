"""Abstract bases of the per-application models.

Each application gets concrete subclasses of these, built at run time for its own
tables (see :mod:`eventsourcing_django.builder`). The columns and types are those of
``eventsourcing.postgres``, so the tables can be shared with it.
"""

from __future__ import annotations

from django.db import models


class StoredEventRecord(models.Model):
    """A stored event in an application's ``<name>_events`` table."""

    originator_id = models.UUIDField()
    originator_version = models.BigIntegerField()
    topic = models.TextField()
    state = models.BinaryField()
    notification_id = models.BigIntegerField(unique=True, editable=False)
    pk = models.CompositePrimaryKey("originator_id", "originator_version")

    class Meta:
        abstract = True


class SnapshotRecord(models.Model):
    """A snapshot in an application's ``<name>_snapshots`` table."""

    originator_id = models.UUIDField()
    originator_version = models.BigIntegerField()
    topic = models.TextField()
    state = models.BinaryField()
    pk = models.CompositePrimaryKey("originator_id", "originator_version")

    class Meta:
        abstract = True


class NotificationTrackingRecord(models.Model):
    """The position reached in one upstream application's notification log."""

    application_name = models.TextField(primary_key=True)
    notification_id = models.BigIntegerField()

    class Meta:
        abstract = True


class ProjectionWorker(models.Model):
    """A process running a projection, as told by its heartbeat.

    ``manage.py run_projections`` keeps one row per projection it runs, on the
    alias of the projection's tracking, and ``rebuild_projection`` refuses to
    reset a projection whose worker is alive.
    """

    name = models.CharField(max_length=200, primary_key=True)
    pid = models.IntegerField()
    host = models.CharField(max_length=255)
    started_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField()
    heartbeat_interval = models.FloatField()

    def __str__(self) -> str:
        return f"{self.name} (process {self.pid} on {self.host})"


class EventStore(models.Model):
    """No table: the admin's "Event store" pages, and the permission to see them.

    Give a user (or a group) the permission ``eventsourcing_django.
    view_event_store`` to let them read the event store in the admin.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = (("view_event_store", "Can view the event store"),)
        verbose_name = "event store"
        verbose_name_plural = "event store"
