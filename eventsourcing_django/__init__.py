"""Stores the applications of the Python eventsourcing library through Django."""

from eventsourcing_django.factory import Factory

__all__ = ["Factory"]
__version__ = "1.0.0"
