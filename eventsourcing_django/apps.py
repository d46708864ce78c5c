from django.apps import AppConfig
from django.core import checks


class EventsourcingDjangoConfig(AppConfig):
    name = "eventsourcing_django"
    verbose_name = "Event sourcing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from eventsourcing_django.checks import (
            TAG,
            check_database_servers,
            check_declarations,
            check_settings,
            check_sqlite_journal,
        )

        checks.register(check_settings, TAG)
        checks.register(check_declarations, TAG)
        checks.register(check_sqlite_journal, TAG)
        checks.register(check_database_servers, TAG, checks.Tags.database)

        from django.conf import settings

        if "django_tenants" in settings.INSTALLED_APPS and hasattr(
            settings, "TENANT_MODEL"
        ):
            from eventsourcing_django.tenants import connect_signals

            connect_signals()
