from django.http import HttpRequest, JsonResponse

from eventsourcing_django.tenants import get_application
from tests.testapp.domain import Universe


def create_world(request: HttpRequest) -> JsonResponse:
    """A view that writes to the Universe of the request's tenant."""
    universe = get_application(Universe)
    world_id = universe.create_world()
    universe.make_it_so(world_id, request.GET.get("what", "something"))
    return JsonResponse(
        {"world_id": str(world_id), "events": universe.recorder.max_notification_id()}
    )
