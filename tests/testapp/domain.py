"""The README's World and Universe, for the projection example."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class World(Aggregate):
    def __init__(self) -> None:
        self.history: list[str] = []

    @event("SomethingHappened")
    def make_it_so(self, what: str) -> None:
        self.history.append(what)


class Universe(Application[UUID]):
    snapshotting_intervals: Any = {World: 5}  # noqa: RUF012

    def create_world(self) -> UUID:
        world = World()
        self.save(world)
        return world.id

    def make_it_so(self, world_id: UUID, what: str) -> None:
        world: World = self.repository.get(world_id)
        world.make_it_so(what)
        self.save(world)
