"""The library's projection test cases, with a view kept in an ordinary Django model."""

from __future__ import annotations

from typing import ClassVar

from django.db.models import F
from eventsourcing.persistence import Tracking
from eventsourcing.tests.projection import (
    AggregateEventCountersProjectionTestCase,
    EventCountersView,
    EventCountersViewTestCase,
    EventSourcedProjectionTestCase,
)

from eventsourcing_django.recorders import DjangoTrackingRecorder
from tests.base import DjangoDBTestCase
from tests.testapp.models import EventCounter

PERSISTENCE = {"PERSISTENCE_MODULE": "eventsourcing_django"}


class DjangoEventCounters(DjangoTrackingRecorder, EventCountersView):
    """Counts events in a Django model, tracking in the same transaction."""

    def _get(self, name: str) -> int:
        counter = EventCounter.objects.using(self.using).filter(name=name).first()
        return 0 if counter is None else counter.count

    def _incr(self, name: str, tracking: Tracking) -> None:
        with self.tracking_transaction() as cursor:
            # Tracking first: a repeated event fails before touching the counter.
            self._insert_tracking(cursor, tracking)
            counters = EventCounter.objects.using(self.using)
            if not counters.filter(name=name).update(count=F("count") + 1):
                counters.create(name=name, count=1)

    def get_created_event_counter(self) -> int:
        return self._get("created")

    def get_subsequent_event_counter(self) -> int:
        return self._get("subsequent")

    def incr_created_event_counter(self, tracking: Tracking) -> None:
        self._incr("created", tracking)

    def incr_subsequent_event_counter(self, tracking: Tracking) -> None:
        self._incr("subsequent", tracking)


class TestEventCountersView(DjangoDBTestCase, EventCountersViewTestCase):
    def construct_event_counters_view(self) -> EventCountersView:
        view = DjangoEventCounters("Counters")
        view.create_table()
        return view


class TestAggregateEventCountersProjection(
    DjangoDBTestCase, AggregateEventCountersProjectionTestCase
):
    view_class = DjangoEventCounters
    env: ClassVar[dict[str, str]] = PERSISTENCE


class TestEventSourcedProjection(DjangoDBTestCase, EventSourcedProjectionTestCase):
    env: ClassVar[dict[str, str]] = PERSISTENCE


del AggregateEventCountersProjectionTestCase
del EventCountersViewTestCase
del EventSourcedProjectionTestCase
