"""Views of the test project: the projection's model, and the declared Universe."""

from uuid import UUID

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from eventsourcing_django.applications import get_application
from tests.testapp.domain import Universe
from tests.testapp.models import WorldSummary


def world_summaries(request: HttpRequest) -> JsonResponse:
    """An ordinary Django view over the projection's model."""
    rows = WorldSummary.objects.order_by("world_id").values(
        "world_id", "history_length", "last_what"
    )
    return JsonResponse(
        {"worlds": [{**row, "world_id": str(row["world_id"])} for row in rows]}
    )


@csrf_exempt
@require_POST
def create_world(request: HttpRequest) -> JsonResponse:
    world_id = get_application(Universe).create_world()
    return JsonResponse({"world_id": str(world_id)}, status=201)


@csrf_exempt
@require_POST
def make_it_so(request: HttpRequest, world_id: UUID) -> JsonResponse:
    get_application(Universe).make_it_so(world_id, request.POST["what"])
    return JsonResponse({"ok": True})


@require_GET
def world_history(request: HttpRequest, world_id: UUID) -> JsonResponse:
    world = get_application(Universe).repository.get(world_id)
    return JsonResponse({"history": world.history})
