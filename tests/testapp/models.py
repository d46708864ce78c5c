from django.db import models


class EventCounter(models.Model):
    """A read model for the library's projection test cases."""

    name = models.CharField(max_length=100, unique=True)
    count = models.BigIntegerField(default=0)


class WorldSummary(models.Model):
    """The read model of the projection example."""

    world_id = models.UUIDField(primary_key=True)
    history_length = models.IntegerField(default=0)
    last_what = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"World {self.world_id}: {self.history_length} things happened"
