"""``manage.py eventsourcing_tables``: create, drop or list applications' tables.

For operators who keep the tables out of migrations (and out of the application's
start-up, with ``CREATE_TABLE=n``). Each application's tables go where the
application itself would look for them: its declared env (``DJANGO_DB_ALIAS``,
``DJANGO_SCHEMA``, ``ORIGINATOR_ID_TYPE`` in ``EVENTSOURCING_APPLICATIONS``), then
the routers and ``EVENTSOURCING_SCHEMAS``; ``--database``, ``--schema`` and
``--originator-id-type`` override them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from eventsourcing.persistence import NotSupportedError, PersistenceError
from eventsourcing.utils import Environment

from eventsourcing_django.applications import declaration, is_declared
from eventsourcing_django.conf import tenant_schema
from eventsourcing_django.ddl import create_table, drop_table
from eventsourcing_django.dialects import Dialect, dialect_for
from eventsourcing_django.errors import check_database_alias
from eventsourcing_django.factory import Factory
from eventsourcing_django.tables import ApplicationTables, check_schema_name
from eventsourcing_django.vocabulary import DCB_KINDS, KINDS, Kind


def _environment(application_name: str) -> Environment:
    """The declared application's environment, or an empty one."""
    if is_declared(application_name):
        return declaration(application_name).effective_env()
    return Environment(application_name, {})


@dataclass(frozen=True)
class _Target:
    """One application's tables, where they are to be found."""

    application_name: str
    tables: list[tuple[Kind, str]]
    alias: str
    schema: str | None
    dialect: Dialect

    @property
    def where(self) -> str:
        schema = f", schema {self.schema!r}" if self.schema else ""
        return f"database {self.alias!r}{schema}"


class Command(BaseCommand):
    help = (
        "Creates, drops or lists the tables of eventsourcing applications "
        "(<name>_events, <name>_snapshots, <name>_tracking; with --dcb, a DCB "
        "application's <name>_dcb and <name>_dcb_tags), without migrations."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "action",
            choices=["create", "drop", "list"],
            help="What to do with the tables.",
        )
        parser.add_argument(
            "application_names",
            nargs="+",
            metavar="APPNAME",
            help="Application names (the class attribute 'name').",
        )
        parser.add_argument(
            "--database",
            help=(
                "Nominates a database. Defaults to the one the database routers "
                "give each application ('default' if they give none)."
            ),
        )
        parser.add_argument(
            "--schema",
            help=(
                "PostgreSQL schema of the tables. Defaults to the one "
                "EVENTSOURCING_SCHEMAS gives each application, if any."
            ),
        )
        parser.add_argument(
            "--no-events",
            action="store_false",
            dest="events",
            help="Leave the events tables alone.",
        )
        parser.add_argument(
            "--no-snapshots",
            action="store_false",
            dest="snapshots",
            help="Leave the snapshots tables alone.",
        )
        parser.add_argument(
            "--no-tracking",
            action="store_false",
            dest="tracking",
            help="Leave the tracking tables alone.",
        )
        parser.add_argument(
            "--dcb",
            action="store_true",
            help=(
                "The tables of DCB applications (eventsourcing.dcb): <name>_dcb "
                "and <name>_dcb_tags, instead of the others."
            ),
        )
        parser.add_argument(
            "--originator-id-type",
            choices=["uuid", "text"],
            help=(
                "Column type of originator IDs. Defaults to the declared env's "
                "ORIGINATOR_ID_TYPE, else uuid."
            ),
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Drop without asking for confirmation.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity: int = options["verbosity"]
        every_kind: tuple[Kind, ...] = KINDS
        kinds = [kind for kind in every_kind if options[kind]]
        if options["dcb"]:
            if len(kinds) < len(KINDS):
                msg = "--dcb takes a DCB application's tables, both: no --no-* with it."
                raise CommandError(msg)
            kinds = list(DCB_KINDS)
        if not kinds:
            msg = "--no-events, --no-snapshots and --no-tracking leave no table."
            raise CommandError(msg)
        # Check every application before touching any database.
        targets = [
            self._target(name, kinds, options) for name in options["application_names"]
        ]
        action = options["action"]
        if action == "list":
            for target in targets:
                self._list(target)
        elif action == "create":
            for target in targets:
                self._create(target)
        else:
            if options["interactive"] and not self._confirm_drop(targets):
                raise CommandError("Nothing dropped.")
            for target in targets:
                self._drop(target)

    def _target(
        self, application_name: str, kinds: list[Kind], options: dict[str, Any]
    ) -> _Target:
        try:
            tables = ApplicationTables.for_application(application_name)
            # Where the application itself would look: its factory, built from
            # its declaration (no database is touched).
            factory = Factory(_environment(application_name))
            schema = options["schema"] or factory.schema
            if schema is not None:
                check_schema_name(schema)
            routed = factory.database_alias()
            alias = routed
            if options["database"]:
                alias = check_database_alias(
                    options["database"],
                    application_name=application_name,
                    source="the option --database",
                )
        except (ValueError, ImproperlyConfigured) as e:
            raise CommandError(str(e)) from e
        # Under django-tenants (tenant_command, all_tenants_command): the tenant's.
        schema = schema or tenant_schema(connections[alias])
        if alias != routed and self.verbosity >= 1:
            self.stderr.write(
                self.style.WARNING(
                    f"The database routers send application {application_name!r} "
                    f"to {routed!r}, not to {alias!r}: its recorders will look for "
                    "the tables there unless its env sets DJANGO_DB_ALIAS."
                )
            )
        try:
            dialect = dialect_for(
                connections[alias],
                schema=schema,
                originator_id_type=(
                    options["originator_id_type"] or factory.originator_id_type
                ),
            )
        except NotSupportedError as e:
            msg = f"Application {application_name!r}: {e}."
            raise CommandError(msg) from e
        return _Target(
            application_name=application_name,
            tables=[(kind, getattr(tables, kind)) for kind in kinds],
            alias=alias,
            schema=schema,
            dialect=dialect,
        )

    def _create(self, target: _Target) -> None:
        for kind, table in target.tables:
            try:
                created = create_table(target.alias, target.dialect, kind, table)
            except PersistenceError as e:
                msg = f"Could not create {table!r} on {target.where}: {e}"
                raise CommandError(msg) from e
            if self.verbosity < 1:
                continue
            if created:
                self.stdout.write(
                    self.style.SUCCESS(f"Created {table!r} on {target.where}.")
                )
            else:
                self.stdout.write(f"{table!r} already exists on {target.where}.")

    def _drop(self, target: _Target) -> None:
        for _, table in reversed(target.tables):
            try:
                dropped = drop_table(target.alias, target.dialect, table)
            except PersistenceError as e:
                msg = f"Could not drop {table!r} on {target.where}: {e}"
                raise CommandError(msg) from e
            if self.verbosity < 1:
                continue
            if dropped:
                self.stdout.write(
                    self.style.SUCCESS(f"Dropped {table!r} from {target.where}.")
                )
            else:
                self.stdout.write(f"{table!r} does not exist on {target.where}.")

    def _list(self, target: _Target) -> None:
        self.stdout.write(
            self.style.MIGRATE_HEADING(f"{target.application_name} ({target.where})")
        )
        with connections[target.alias].cursor() as cursor:
            for _, table in target.tables:
                exists = target.dialect.table_exists(cursor, table)
                self.stdout.write(f" [{'X' if exists else ' '}] {table}")

    def _confirm_drop(self, targets: list[_Target]) -> bool:
        lines = [
            f"  {table} on {target.where}"
            for target in targets
            for _, table in target.tables
        ]
        answer = input(
            "You are about to drop these tables, and every event in them:\n"
            + "\n".join(lines)
            + "\nType 'yes' to continue, or 'no' to cancel: "
        )
        return answer == "yes"
