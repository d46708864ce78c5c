from django.db import models


class EventCounter(models.Model):
    """A read model for the library's projection test cases."""

    name = models.CharField(max_length=100, unique=True)
    count = models.BigIntegerField(default=0)
