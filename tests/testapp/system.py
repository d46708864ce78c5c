"""A system for the runner tests: Universe leads, WorldCounter follows."""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate, event
from eventsourcing.system import ProcessApplication, Runner, System

from tests.testapp.domain import Universe, World


class Tally(Aggregate):
    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    @staticmethod
    def create_id(name: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/tallies/{name}")

    @event("Incremented")
    def increment(self) -> None:
        self.count += 1


class WorldCounter(ProcessApplication[UUID]):
    """Counts the worlds the Universe creates."""

    @singledispatchmethod
    def policy(
        self, domain_event: Any, processing_event: ProcessingEvent[UUID]
    ) -> None:
        """Other events are not counted."""

    @policy.register
    def _(
        self, domain_event: World.Created, processing_event: ProcessingEvent[UUID]
    ) -> None:
        try:
            tally: Tally = self.repository.get(Tally.create_id("worlds"))
        except AggregateNotFoundError:
            tally = Tally("worlds")
        tally.increment()
        processing_event.collect_events(tally)

    def count(self) -> int:
        try:
            tally: Tally = self.repository.get(Tally.create_id("worlds"))
        except AggregateNotFoundError:
            return 0
        return tally.count


system = System(pipes=[[Universe, WorldCounter]])

#: The runner that ``settings.EVENTSOURCING_RUNNER`` points at, set by tests.
runner: Runner[Any] | None = None


def get_runner() -> Runner[Any] | None:
    return runner
