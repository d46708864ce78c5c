"""The library's application test cases, with our factory as the persistence module."""

from __future__ import annotations

from typing import ClassVar

from eventsourcing.tests.application import (
    ApplicationTestCase,
    ExampleApplicationTestCase,
)

from tests.base import DjangoDBTestCase

PERSISTENCE = {"PERSISTENCE_MODULE": "eventsourcing_django"}


class TestExampleApplication(DjangoDBTestCase, ExampleApplicationTestCase):
    environ = PERSISTENCE
    expected_factory_topic = "eventsourcing_django.factory:Factory"


class TestApplication(DjangoDBTestCase, ApplicationTestCase):
    environ = PERSISTENCE


class TestExampleApplicationLegacyTopic(DjangoDBTestCase, ExampleApplicationTestCase):
    environ: ClassVar[dict[str, str]] = {
        "INFRASTRUCTURE_FACTORY": "eventsourcing_django.factory:Factory"
    }
    expected_factory_topic = "eventsourcing_django.factory:Factory"


del ApplicationTestCase
del ExampleApplicationTestCase
