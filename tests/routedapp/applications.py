"""Application classes of the stories in the tests, found by topic."""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import Aggregate, DomainEventProtocol, event
from eventsourcing.system import ProcessApplication

ENV = {"PERSISTENCE_MODULE": "eventsourcing_django"}


class Star(Aggregate):
    @event("Named")
    def __init__(self, name: str) -> None:
        self.name = name

    @event("Renamed")
    def rename(self, name: str) -> None:
        self.name = name


class Universe(Application[UUID]):
    """Events only: no snapshotting, no upstream applications."""

    env: ClassVar[dict[str, str]] = ENV

    def create_star(self, name: str) -> UUID:
        star = Star(name)
        self.save(star)
        return star.id

    def rename_star(self, star_id: UUID, name: str) -> None:
        star: Star = self.repository.get(star_id)
        star.rename(name)
        self.save(star)

    def star_name(self, star_id: UUID) -> str:
        star: Star = self.repository.get(star_id)
        return star.name


class Galaxy(Universe):
    """Takes a snapshot of a star every second event."""

    snapshotting_intervals: ClassVar[dict[type[Aggregate[Any]], int]] = {Star: 2}


class Nebula(Universe):
    """Turns snapshotting on in its env, and keeps text originator IDs."""

    env: ClassVar[dict[str, str]] = {
        **ENV,
        "IS_SNAPSHOTTING_ENABLED": "y",
        "ORIGINATOR_ID_TYPE": "text",
    }


class Observatory(ProcessApplication[UUID]):
    """Follows another application, so it needs a tracking table."""

    env: ClassVar[dict[str, str]] = ENV

    def policy(
        self,
        domain_event: DomainEventProtocol[UUID],
        processing_event: ProcessingEvent[UUID],
    ) -> None:
        pass
