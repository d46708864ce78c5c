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
