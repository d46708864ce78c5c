"""The projection example: the Universe's worlds summarized in a Django model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from django.db import connections
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

    @tracked
    def worlds_changed(
        self, created: list[UUID], happened: dict[UUID, list[str]], tracking: Tracking
    ) -> None:
        """A page of events at once: one read and one upsert for all."""
        objects = WorldSummary.objects.using(self.using)
        new = set(created)
        rows = objects.in_bulk([i for i in happened if i not in new])
        rows.update((i, WorldSummary(world_id=i)) for i in created)
        for world_id, whats in happened.items():
            if "explode" in whats:
                msg = f"World {world_id} cannot explode"
                raise ValueError(msg)
            rows[world_id].history_length += len(whats)
            rows[world_id].last_what = whats[-1]
        # Cheaper than bulk_update's CASE per row, which Django builds slowly.
        # MySQL's ON DUPLICATE KEY takes no conflict target: Django refuses
        # unique_fields there, and the primary key is the only unique key.
        features = connections[self.using].features
        objects.bulk_create(
            rows.values(),
            update_conflicts=True,
            unique_fields=(
                ["world_id"] if features.supports_update_conflicts_with_target else None
            ),
            update_fields=["history_length", "last_what"],
        )


class WorldSummaryProjection(Projection[WorldSummaryView]):
    name = "WorldSummary"
    topics = (get_topic(World.Created), get_topic(World.SomethingHappened))

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Other events are not summarized."""

    def process_page(self, events: Sequence[Any], tracking: Tracking) -> None:
        """The events of a page in one call, when the worker applies a page."""
        created: list[UUID] = []
        happened: dict[UUID, list[str]] = {}
        for event in events:
            if isinstance(event, World.Created):
                created.append(event.originator_id)
            elif isinstance(event, World.SomethingHappened):
                what = event.what  # type: ignore[attr-defined]
                happened.setdefault(event.originator_id, []).append(what)
        self.view.worlds_changed(created, happened, tracking=tracking)

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
