"""The library's conformance suites, with the application routed to the second
database by EventSourcingRouter, and (PostgreSQL) pinned to a schema."""

from __future__ import annotations

from typing import Any, ClassVar

from django.test import override_settings
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
    TrackingRecorder,
)
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    ApplicationRecorderTestCase,
    InfrastructureFactoryTestCase,
    NonInterleavingNotificationIDsBaseCase,
    ProcessRecorderTestCase,
    TrackingRecorderTestCase,
)
from eventsourcing.utils import Environment

from eventsourcing_django.factory import Factory
from eventsourcing_django.recorders import (
    DjangoApplicationRecorder,
    DjangoRecorder,
)
from tests.base import DjangoDBTestCase, factory_env, is_postgres, table_names
from tests.test_persistence import DjangoFactoryExpectations

APPLICATION = "TestApp"
SCHEMA = "es_conformance"


@override_settings(
    DATABASE_ROUTERS=["eventsourcing_django.routers.EventSourcingRouter"],
    EVENTSOURCING_DATABASES={APPLICATION: "other", "TestCase": "other"},
)
class Routed(DjangoDBTestCase):
    """Recorders made by the factory for an application the router sends to
    'other'; each test checks that it found them there."""

    databases: ClassVar[set[str]] = {"default", "other"}
    expected_schema: ClassVar[str | None] = None

    def factory(self) -> Factory:
        return Factory(Environment(APPLICATION, factory_env(APPLICATION)))

    def routed(self, recorder: Any) -> Any:
        assert isinstance(recorder, DjangoRecorder)
        self.assertEqual(recorder.using, "other")
        self.assertEqual(recorder.schema, self.expected_schema)
        return recorder

    def tearDown(self) -> None:
        super().tearDown()
        # Nothing of the application's ever reached 'default'.
        self.assertEqual(table_names("default"), set())
        self.assertEqual(table_names("default", self.expected_schema), set())


class TestRoutedAggregateRecorderEvents(Routed, AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return self.routed(self.factory().aggregate_recorder("events"))


class TestRoutedAggregateRecorderSnapshots(Routed, AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return self.routed(self.factory().aggregate_recorder("snapshots"))


class TestRoutedApplicationRecorder(
    Routed, ApplicationRecorderTestCase[DjangoApplicationRecorder]
):
    def create_recorder(self) -> DjangoApplicationRecorder:
        return self.routed(self.factory().application_recorder())

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestRoutedTrackingRecorder(Routed, TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return self.routed(self.factory().tracking_recorder())


class TestRoutedProcessRecorder(Routed, ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return self.routed(self.factory().process_recorder())


class TestRoutedNonInterleavingNotificationIDs(
    Routed, NonInterleavingNotificationIDsBaseCase
):
    def create_recorder(self) -> ApplicationRecorder:
        return self.routed(self.factory().application_recorder())


class TestRoutedInfrastructureFactory(
    DjangoFactoryExpectations, Routed, InfrastructureFactoryTestCase[Factory]
):
    def setUp(self) -> None:
        self.env = Environment("TestCase")
        self.env[InfrastructureFactory.PERSISTENCE_MODULE] = "eventsourcing_django"
        super().setUp()
        self.assertEqual(self.factory.database_alias(), "other")
        self.assertEqual(self.factory.schema, self.expected_schema)


# The same suites with the application pinned to a schema as well. Not collected
# on SQLite, which has no schemas.
pinned = override_settings(
    EVENTSOURCING_SCHEMAS={APPLICATION: SCHEMA, "TestCase": SCHEMA}
)


class Pinned:
    __test__ = is_postgres()
    expected_schema: ClassVar[str | None] = SCHEMA
    schemas: ClassVar[tuple[str, ...]] = (SCHEMA,)


@pinned
class TestPinnedAggregateRecorderEvents(Pinned, TestRoutedAggregateRecorderEvents):
    pass


@pinned
class TestPinnedAggregateRecorderSnapshots(
    Pinned, TestRoutedAggregateRecorderSnapshots
):
    pass


@pinned
class TestPinnedApplicationRecorder(Pinned, TestRoutedApplicationRecorder):
    pass


@pinned
class TestPinnedTrackingRecorder(Pinned, TestRoutedTrackingRecorder):
    pass


@pinned
class TestPinnedProcessRecorder(Pinned, TestRoutedProcessRecorder):
    pass


@pinned
class TestPinnedNonInterleavingNotificationIDs(
    Pinned, TestRoutedNonInterleavingNotificationIDs
):
    pass


@pinned
class TestPinnedInfrastructureFactory(Pinned, TestRoutedInfrastructureFactory):
    pass


del AggregateRecorderTestCase
del ApplicationRecorderTestCase
del TrackingRecorderTestCase
del ProcessRecorderTestCase
del NonInterleavingNotificationIDsBaseCase
del InfrastructureFactoryTestCase
