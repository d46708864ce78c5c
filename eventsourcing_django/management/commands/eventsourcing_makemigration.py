"""``manage.py eventsourcing_makemigration``: a migration that creates tables.

Writes into a project app a migration of
:class:`~eventsourcing_django.operations.CreateApplicationTables` operations, one
for each application class named by its topic (it has a colon) and each projection
named as in ``settings.EVENTSOURCING_PROJECTIONS``, after the app's latest
migration::

    manage.py eventsourcing_makemigration myapp myproject.apps:Universe WorldSummary

The tables are chosen from the class: events always, snapshots when the class
enables snapshotting (``is_snapshotting_enabled``, ``snapshotting_intervals``, or
``IS_SNAPSHOTTING_ENABLED`` in its ``env``), tracking for process applications and
event-sourced projections; a projection's view gets its tracking table only; a
DCB application (``eventsourcing.dcb``) gets its two tables, with
:class:`~eventsourcing_django.operations.CreateDCBTables`. Only
the class (and the projection's ``env`` in settings) is read, not the environment
of the shell that runs the command, so the same code always writes the same
migration.
"""

from __future__ import annotations

import os
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.management.utils import run_formatters
from django.db.migrations import Migration
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.writer import MigrationWriter
from eventsourcing.application import Application
from eventsourcing.dcb.application import DCBApplication
from eventsourcing.projection import EventSourcedProjection
from eventsourcing.system import ProcessApplication
from eventsourcing.utils import Environment, resolve_topic, strtobool

from eventsourcing_django.factory import Factory
from eventsourcing_django.operations import (
    ApplicationTablesOperation,
    CreateApplicationTables,
    CreateDCBTables,
    DCBTablesOperation,
    DropApplicationTables,
)
from eventsourcing_django.projections import projection_specs
from eventsourcing_django.tables import InvalidApplicationNameError
from eventsourcing_django.vocabulary import KINDS, Kind


class Command(BaseCommand):
    help = (
        "Writes a migration into an app that creates the tables of the "
        "eventsourcing application classes given by topic (module:ClassName) and "
        "of the projections named in settings.EVENTSOURCING_PROJECTIONS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "app_label", help="The app whose migrations package gets the migration."
        )
        parser.add_argument(
            "targets",
            nargs="+",
            metavar="TOPIC_OR_PROJECTION",
            help=(
                "An application class, as 'package.module:ClassName', or the name "
                "of a projection in settings.EVENTSOURCING_PROJECTIONS."
            ),
        )
        parser.add_argument("-n", "--name", help="Use this name for the migration.")
        parser.add_argument(
            "--snapshots",
            action="store_true",
            help="Create snapshots tables even for classes without snapshotting.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Just show what the migration would be; don't write it.",
        )
        parser.add_argument(
            "--no-header",
            action="store_false",
            dest="include_header",
            help="Do not add header comments to the new migration file.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity: int = options["verbosity"]
        app_label: str = options["app_label"]
        try:
            apps.get_app_config(app_label)
        except LookupError as e:
            msg = f"{e} Give the label of an app in INSTALLED_APPS."
            raise CommandError(msg) from e
        if MigrationLoader.migrations_module(app_label)[0] is None:
            msg = f"Migrations of app {app_label!r} are disabled in MIGRATION_MODULES."
            raise CommandError(msg)
        wanted = [
            self._operation(target, with_snapshots=options["snapshots"])
            if ":" in target
            else self._projection_operation(target, with_snapshots=options["snapshots"])
            for target in options["targets"]
        ]

        loader = MigrationLoader(None, ignore_no_migrations=True)
        conflicts = loader.detect_conflicts().get(app_label)
        if conflicts:
            msg = (
                f"Conflicting migrations in app {app_label!r} "
                f"({', '.join(conflicts)}); run 'manage.py makemigrations --merge' "
                "first."
            )
            raise CommandError(msg)
        operations = self._still_missing(loader, wanted)
        if not operations:
            if self.verbosity >= 1:
                self.stdout.write(
                    "No changes detected: the migrations already create these tables."
                )
            return

        leaves = loader.graph.leaf_nodes(app_label)
        # Built the way the autodetector builds the migrations it writes.
        migration_class = type(
            "Migration",
            (Migration,),
            {
                "operations": operations,
                "dependencies": leaves[:1],
                "initial": not leaves,
            },
        )
        migration = migration_class("", app_label)
        number = (
            (MigrationAutodetector.parse_number(leaves[0][1]) or 0) + 1 if leaves else 1
        )
        migration.name = f"{number:04d}_{options['name'] or migration.suggest_name()}"
        self._write(MigrationWriter(migration, options["include_header"]), options)

    def _operation(
        self, topic: str, *, with_snapshots: bool
    ) -> ApplicationTablesOperation:
        try:
            cls = resolve_topic(topic)
        except Exception as e:
            msg = (
                f"Cannot import application class {topic!r} ({e}). Give its topic "
                "as 'package.module:ClassName'."
            )
            raise CommandError(msg) from e
        if isinstance(cls, type) and issubclass(cls, DCBApplication):
            return self._dcb_operation(topic, cls)
        if not (isinstance(cls, type) and issubclass(cls, Application)):
            msg = (
                f"{topic!r} is not a subclass of eventsourcing's Application "
                "or DCBApplication."
            )
            raise CommandError(msg)
        return self._application_operation(
            topic, cls, dict(cls.env), with_snapshots=with_snapshots
        )

    def _application_operation(
        self,
        label: str,
        cls: type[Application[Any]],
        env_vars: dict[str, str],
        *,
        with_snapshots: bool,
    ) -> CreateApplicationTables:
        env = Environment(cls.name, env_vars)
        snapshots = (
            with_snapshots
            or cls.is_snapshotting_enabled
            or bool(cls.snapshotting_intervals)
            or strtobool(env.get("IS_SNAPSHOTTING_ENABLED") or "no")
        )
        # Both follow other applications, recording how far in their tracking.
        tracking = issubclass(cls, ProcessApplication | EventSourcedProjection)
        return self._create(
            label, cls.name, env, events=True, snapshots=snapshots, tracking=tracking
        )

    def _dcb_operation(self, topic: str, cls: type[DCBApplication]) -> CreateDCBTables:
        env = Environment(cls.name, dict(cls.env))
        try:
            return CreateDCBTables(
                cls.name, schema=env.get(Factory.DJANGO_SCHEMA) or None
            )
        except (InvalidApplicationNameError, ValueError) as e:
            msg = f"{topic}: {e}"
            raise CommandError(msg) from e

    def _projection_operation(
        self, name: str, *, with_snapshots: bool
    ) -> CreateApplicationTables:
        try:
            (spec,) = projection_specs([name])
        except ImproperlyConfigured as e:
            msg = (
                f"{name!r} is neither an application topic "
                f"('package.module:ClassName') nor a projection name. {e}"
            )
            raise CommandError(msg) from e
        projection_class: Any = spec.projection_class
        env_vars = {**dict(getattr(projection_class, "env", {})), **spec.env}
        if spec.view_class is None:
            # An event-sourced projection is an application of its own.
            return self._application_operation(
                name, projection_class, env_vars, with_snapshots=with_snapshots
            )
        # A view keeps only tracking, in a table named after the projection
        # class's name, as LoadedProjection's tracking recorder does.
        env = Environment(projection_class.name, env_vars)
        return self._create(
            name,
            projection_class.name,
            env,
            events=False,
            snapshots=False,
            tracking=True,
        )

    def _create(
        self,
        label: str,
        application_name: str,
        env: Environment,
        **kinds: bool,
    ) -> CreateApplicationTables:
        if env.get(Factory.DJANGO_DB_ALIAS) and self.verbosity >= 1:
            self.stderr.write(
                self.style.WARNING(
                    f"{label} sets {Factory.DJANGO_DB_ALIAS} in its env; migrations "
                    "follow the database routers, so also name its database in "
                    "EVENTSOURCING_DATABASES."
                )
            )
        try:
            return CreateApplicationTables(
                application_name,
                **kinds,
                schema=env.get(Factory.DJANGO_SCHEMA) or None,
                originator_id_type=(
                    env.get(Factory.ORIGINATOR_ID_TYPE) or "uuid"
                ).lower(),  # type: ignore[arg-type]
            )
        except (InvalidApplicationNameError, ValueError) as e:
            msg = f"{label}: {e}"
            raise CommandError(msg) from e

    def _still_missing(
        self, loader: MigrationLoader, wanted: list[ApplicationTablesOperation]
    ) -> list[ApplicationTablesOperation]:
        """The operations still needed, after what existing migrations do."""
        created: dict[tuple[str, str | None], set[Kind]] = {}
        seen: set[tuple[str, str]] = set()
        for leaf in loader.graph.leaf_nodes():
            for node in loader.graph.forwards_plan(leaf):
                if node in seen:
                    continue
                seen.add(node)
                for op in loader.graph.nodes[node].operations:
                    if isinstance(op, ApplicationTablesOperation):
                        kinds = created.setdefault((op.tables.prefix, op.schema), set())
                        if isinstance(op, DropApplicationTables):
                            kinds.difference_update(op.kinds)
                        else:
                            kinds.update(op.kinds)
        missing: list[ApplicationTablesOperation] = []
        for op in wanted:
            present = created.get((op.tables.prefix, op.schema), set())
            kinds = set(op.kinds) - present
            if not kinds:
                continue
            if isinstance(op, DCBTablesOperation):
                missing.append(op)  # Both tables, always.
                continue
            _, _, kwargs = op.deconstruct()
            for kind in KINDS:
                kwargs[kind] = kind in kinds
            missing.append(CreateApplicationTables(op.application_name, **kwargs))
        return missing

    def _write(self, writer: MigrationWriter, options: dict[str, Any]) -> None:
        if self.verbosity >= 1:
            self.stdout.write(
                self.style.MIGRATE_HEADING(
                    f"Migrations for {writer.migration.app_label!r}:"
                )
            )
            self.stdout.write(f"  {self.style.MIGRATE_LABEL(writer.path)}")
            for operation in writer.migration.operations:
                self.stdout.write(f"    {operation.formatted_description()}")
        if options["dry_run"]:
            if self.verbosity >= 3:
                self.stdout.write(writer.as_string())
            return
        directory = os.path.dirname(writer.path)
        os.makedirs(directory, exist_ok=True)
        init_path = os.path.join(directory, "__init__.py")
        if not os.path.isfile(init_path):
            open(init_path, "w").close()
        with open(writer.path, "w", encoding="utf-8") as fh:
            fh.write(writer.as_string())
        run_formatters([writer.path], stderr=self.stderr)
