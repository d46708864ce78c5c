from django.apps import AppConfig


class EventsourcingDjangoConfig(AppConfig):
    name = "eventsourcing_django"
    verbose_name = "Event sourcing"
    default_auto_field = "django.db.models.BigAutoField"
