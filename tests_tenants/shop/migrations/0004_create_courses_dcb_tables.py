from django.db import migrations

import eventsourcing_django.operations


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0003_worldsummary_tracking"),
    ]

    operations = [
        eventsourcing_django.operations.CreateDCBTables("Courses"),
    ]
