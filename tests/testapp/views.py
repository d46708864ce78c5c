from django.http import HttpRequest, JsonResponse

from tests.testapp.models import WorldSummary


def world_summaries(request: HttpRequest) -> JsonResponse:
    """An ordinary Django view over the projection's model."""
    rows = WorldSummary.objects.order_by("world_id").values(
        "world_id", "history_length", "last_what"
    )
    return JsonResponse(
        {"worlds": [{**row, "world_id": str(row["world_id"])} for row in rows]}
    )
