"""The app's first migration.

It creates no table: each application's tables are made by the factory
(``CREATE_TABLE``) or by the migration operations in
:mod:`eventsourcing_django.operations`.
"""

from django.db import migrations


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = []
