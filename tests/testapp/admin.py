from django.contrib import admin

from tests.testapp.models import WorldSummary


@admin.register(WorldSummary)
class WorldSummaryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("world_id", "history_length", "last_what")
