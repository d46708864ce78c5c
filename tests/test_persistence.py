"""The library's conformance suites for recorders and factories, on our recorders."""

from __future__ import annotations

from typing import Any

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
    DjangoAggregateRecorder,
    DjangoApplicationRecorder,
    DjangoProcessRecorder,
    DjangoTrackingRecorder,
)
from tests.base import DjangoDBTestCase


def created(recorder: Any) -> Any:
    recorder.create_table()
    return recorder


class TestAggregateRecorderEvents(DjangoDBTestCase, AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return created(DjangoAggregateRecorder("TestApp", purpose="events"))


class TestAggregateRecorderSnapshots(DjangoDBTestCase, AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return created(DjangoAggregateRecorder("TestApp", purpose="snapshots"))


class TestApplicationRecorder(
    DjangoDBTestCase, ApplicationRecorderTestCase[DjangoApplicationRecorder]
):
    def create_recorder(self) -> DjangoApplicationRecorder:
        return created(DjangoApplicationRecorder("TestApp"))

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestTrackingRecorder(DjangoDBTestCase, TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return created(DjangoTrackingRecorder("TestApp"))


class TestProcessRecorder(DjangoDBTestCase, ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return created(DjangoProcessRecorder("TestApp"))


class TestNonInterleavingNotificationIDs(
    DjangoDBTestCase, NonInterleavingNotificationIDsBaseCase
):
    def create_recorder(self) -> ApplicationRecorder:
        return created(DjangoApplicationRecorder("TestApp"))


class CustomTrackingRecorder(DjangoTrackingRecorder):
    pass


class DjangoFactoryExpectations:
    """What InfrastructureFactoryTestCase should find: our factory and recorders."""

    def expected_factory_class(self) -> type[Factory]:
        return Factory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return DjangoAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return DjangoApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return DjangoTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return CustomTrackingRecorder

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return DjangoProcessRecorder


class TestInfrastructureFactory(
    DjangoFactoryExpectations,
    DjangoDBTestCase,
    InfrastructureFactoryTestCase[Factory],
):
    def setUp(self) -> None:
        self.env = Environment("TestCase")
        self.env[InfrastructureFactory.PERSISTENCE_MODULE] = "eventsourcing_django"
        super().setUp()


del AggregateRecorderTestCase
del ApplicationRecorderTestCase
del TrackingRecorderTestCase
del ProcessRecorderTestCase
del NonInterleavingNotificationIDsBaseCase
del InfrastructureFactoryTestCase
