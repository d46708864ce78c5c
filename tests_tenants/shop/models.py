from django.db import models


class WorldSummary(models.Model):
    """A tenant's read model, kept by a projection in the tenant's schema."""

    world_id = models.UUIDField(primary_key=True)
    history_length = models.IntegerField(default=0)
