from django.db import migrations

import eventsourcing_django.operations


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0002_create_universe_tables"),
    ]

    operations = [
        eventsourcing_django.operations.CreateApplicationTables(
            application_name="WorldSummary",
            events=False,
            snapshots=False,
        ),
    ]
