"""A per-tenant projection: the Universe's worlds in the tenant's own model."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import F
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection

from eventsourcing_django.projections import DjangoProjectionView, tracked
from tests.testapp.domain import World
from tests_tenants.shop.models import WorldSummary


class WorldSummaryView(DjangoProjectionView):
    models = (WorldSummary,)

    @tracked
    def world_created(self, world_id: UUID, tracking: Tracking) -> None:
        WorldSummary.objects.using(self.using).create(world_id=world_id)

    @tracked
    def something_happened(self, world_id: UUID, tracking: Tracking) -> None:
        WorldSummary.objects.using(self.using).filter(world_id=world_id).update(
            history_length=F("history_length") + 1
        )


class WorldSummaryProjection(Projection[WorldSummaryView]):
    name = "WorldSummary"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Other events are not summarized."""

    @process_event.register
    def _(self, domain_event: World.Created, tracking: Tracking) -> None:
        self.view.world_created(domain_event.originator_id, tracking=tracking)

    @process_event.register
    def _(self, domain_event: World.SomethingHappened, tracking: Tracking) -> None:
        self.view.something_happened(domain_event.originator_id, tracking=tracking)
