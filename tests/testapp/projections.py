"""The projection example: the Universe's worlds summarized in a Django model."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import F
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from eventsourcing.utils import get_topic

from eventsourcing_django.projections import DjangoProjectionView, tracked
from tests.testapp.domain import World
from tests.testapp.models import WorldSummary


class WorldSummaryView(DjangoProjectionView):
    models = (WorldSummary,)

    @tracked
    def world_created(self, world_id: UUID, tracking: Tracking) -> None:
        WorldSummary.objects.using(self.using).create(world_id=world_id)

    @tracked
    def something_happened(self, world_id: UUID, what: str, tracking: Tracking) -> None:
        WorldSummary.objects.using(self.using).filter(world_id=world_id).update(
            history_length=F("history_length") + 1, last_what=what
        )
        if what == "explode":
            # A failure after the update: the update and the tracking roll back.
            msg = f"World {world_id} cannot explode"
            raise ValueError(msg)


class WorldSummaryProjection(Projection[WorldSummaryView]):
    name = "WorldSummary"
    topics = (get_topic(World.Created), get_topic(World.SomethingHappened))

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Other events are not summarized."""

    @process_event.register
    def world_created(self, domain_event: World.Created, tracking: Tracking) -> None:
        self.view.world_created(domain_event.originator_id, tracking=tracking)

    @process_event.register
    def something_happened(
        self, domain_event: World.SomethingHappened, tracking: Tracking
    ) -> None:
        self.view.something_happened(
            domain_event.originator_id,
            domain_event.what,  # type: ignore[attr-defined]
            tracking=tracking,
        )
