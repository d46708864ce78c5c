"""Migration operations that create and drop one application's tables.

Put them in a migration of one of your project's apps (``manage.py
eventsourcing_makemigration`` writes one)::

    from django.db import migrations
    from eventsourcing_django.operations import CreateApplicationTables

    class Migration(migrations.Migration):
        dependencies = [("myapp", "0001_initial")]
        operations = [CreateApplicationTables("Universe", tracking=False)]

:class:`UpgradeFromSharedTables` copies applications out of the shared tables of
eventsourcing-django 0.x (see the README, "Upgrading from 0.x").

The operations keep no model state, so ``makemigrations`` never sees the tables.
Before touching a database they ask the routers whether the application's tables
belong there, with the hint ``eventsourcing_application`` naming the application,
so ``migrate --database events`` creates them only where
:class:`~eventsourcing_django.routers.EventSourcingRouter` sends them. They create
and drop only what is missing or present, so running them twice is harmless.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import connections, router
from django.db.migrations.exceptions import IrreversibleError
from django.db.migrations.operations.base import Operation, OperationCategory

from eventsourcing_django.builder import build_model
from eventsourcing_django.conf import schema_for_application, tenant_schema
from eventsourcing_django.ddl import create_table, create_table_statements, drop_table
from eventsourcing_django.dialects import Dialect, dialect_for
from eventsourcing_django.routers import APPLICATION_HINT
from eventsourcing_django.tables import ApplicationTables, check_schema_name
from eventsourcing_django.upgrade import (
    DEFAULT_BATCH_SIZE,
    NoSharedTablesError,
    UpgradeError,
    drop_legacy_tables,
    plan_upgrade,
)
from eventsourcing_django.vocabulary import DCB_KINDS, KINDS, Kind, OriginatorIDType

if TYPE_CHECKING:
    from collections.abc import Sequence

    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.migrations.state import ProjectState

#: The hint :class:`UpgradeFromSharedTables` gives ``allow_migrate``.
UPGRADE_HINT = "eventsourcing_upgrade"

logger = logging.getLogger(__name__)


class ApplicationTablesOperation(Operation):
    """What creating and dropping share: one application, a choice of tables."""

    def __init__(
        self,
        application_name: str,
        events: bool = True,
        snapshots: bool = True,
        tracking: bool = True,
        schema: str | None = None,
        originator_id_type: OriginatorIDType = "uuid",
    ) -> None:
        # Refuse a bad name when the migration is loaded, not half way through it.
        self.tables = ApplicationTables.for_application(application_name)
        self.application_name = application_name
        self.events = events
        self.snapshots = snapshots
        self.tracking = tracking
        self.schema = None if schema is None else check_schema_name(schema)
        if originator_id_type not in ("uuid", "text"):
            msg = (
                "originator_id_type must be 'uuid' or 'text', "
                f"got {originator_id_type!r}"
            )
            raise ValueError(msg)
        self.originator_id_type = originator_id_type
        if not self.kinds:
            msg = (
                f"{type(self).__name__}({application_name!r}) names no table: "
                "leave at least one of events, snapshots, tracking True"
            )
            raise ValueError(msg)

    @property
    def kinds(self) -> list[Kind]:
        """The kinds of table the operation touches, in creation order."""
        chosen: list[tuple[Kind, bool]] = [
            ("events", self.events),
            ("snapshots", self.snapshots),
            ("tracking", self.tracking),
        ]
        return [kind for kind, wanted in chosen if wanted]

    def table_names(self) -> list[str]:
        return [getattr(self.tables, kind) for kind in self.kinds]

    def deconstruct(self) -> tuple[str, Sequence[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        for kind in KINDS:
            if not getattr(self, kind):
                kwargs[kind] = False
        if self.schema is not None:
            kwargs["schema"] = self.schema
        if self.originator_id_type != "uuid":
            kwargs["originator_id_type"] = self.originator_id_type
        return (self.__class__.__qualname__, [self.application_name], kwargs)

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        # The tables have no model in the project state: their models are built
        # at run time, away from Django's app registry.
        pass

    def references_model(self, name: str, app_label: str) -> bool:
        return False

    def _schema(self, connection: BaseDatabaseWrapper) -> str | None:
        # Read when the migration runs, as the recorders read it when they start;
        # under django-tenants' migrate_schemas, the schema being migrated.
        schema = (
            self.schema
            or schema_for_application(self.application_name)
            or tenant_schema(connection)
        )
        return check_schema_name(schema) if schema else None

    def _dialect(self, schema_editor: BaseDatabaseSchemaEditor) -> Dialect:
        return dialect_for(
            schema_editor.connection,
            schema=self._schema(schema_editor.connection),
            originator_id_type=self.originator_id_type,
        )

    def allow_migrate_application(self, alias: str, app_label: str) -> bool:
        """Whether the routers let the application's tables be on ``alias``.

        Asked once for all the tables: an application's tables live together.
        """
        model = build_model(
            "events",
            self.tables.events,
            application_name=self.application_name,
            schema=self._schema(connections[alias]),
        )
        hints = {"model": model, APPLICATION_HINT: self.application_name}
        return router.allow_migrate(
            alias, app_label, model_name=model._meta.model_name, **hints
        )

    def _create(self, app_label: str, schema_editor: BaseDatabaseSchemaEditor) -> None:
        alias = schema_editor.connection.alias
        if not self.allow_migrate_application(alias, app_label):
            return
        dialect = self._dialect(schema_editor)
        for kind in self.kinds:
            table = getattr(self.tables, kind)
            if schema_editor.collect_sql:
                # sqlmigrate: show the statements; they are idempotent as they are.
                for statement in create_table_statements(dialect, kind, table):
                    schema_editor.execute(statement, params=None)
            else:
                create_table(alias, dialect, kind, table)

    def _drop(self, app_label: str, schema_editor: BaseDatabaseSchemaEditor) -> None:
        alias = schema_editor.connection.alias
        if not self.allow_migrate_application(alias, app_label):
            return
        dialect = self._dialect(schema_editor)
        # Tracking first: the reverse of creation order.
        for table in reversed(self.table_names()):
            if schema_editor.collect_sql:
                for statement in dialect.drop_table_statements(table):
                    schema_editor.execute(statement, params=None)
            else:
                drop_table(alias, dialect, table)

    def _tables_description(self) -> str:
        where = f" in schema {self.schema}" if self.schema else ""
        return f"{', '.join(self.kinds)}{where}"


class CreateApplicationTables(ApplicationTablesOperation):
    """Create an application's tables; reversed, drop them."""

    category = OperationCategory.ADDITION

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        self._create(app_label, schema_editor)

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        self._drop(app_label, schema_editor)

    def describe(self) -> str:
        return (
            f"Create tables of eventsourcing application {self.application_name} "
            f"({self._tables_description()})"
        )

    @property
    def migration_name_fragment(self) -> str:
        return f"create_{self.tables.prefix}_tables"


class DropApplicationTables(ApplicationTablesOperation):
    """Drop an application's tables, and its events with them; reversed, create
    them again (empty)."""

    category = OperationCategory.REMOVAL

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        self._drop(app_label, schema_editor)

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        self._create(app_label, schema_editor)

    def describe(self) -> str:
        return (
            f"Drop tables of eventsourcing application {self.application_name} "
            f"({self._tables_description()})"
        )

    @property
    def migration_name_fragment(self) -> str:
        return f"drop_{self.tables.prefix}_tables"


class DCBTablesOperation(ApplicationTablesOperation):
    """What creating and dropping a DCB application's tables share: both its
    tables (``<name>_dcb`` and ``<name>_dcb_tags``), always together."""

    def __init__(self, application_name: str, schema: str | None = None) -> None:
        super().__init__(
            application_name,
            events=False,
            snapshots=False,
            tracking=False,
            schema=schema,
        )

    @property
    def kinds(self) -> list[Kind]:
        return list(DCB_KINDS)

    def deconstruct(self) -> tuple[str, Sequence[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        if self.schema is not None:
            kwargs["schema"] = self.schema
        return (self.__class__.__qualname__, [self.application_name], kwargs)

    def _tables_description(self) -> str:
        where = f" in schema {self.schema}" if self.schema else ""
        return f"DCB events and tags{where}"


class CreateDCBTables(DCBTablesOperation, CreateApplicationTables):
    """Create a DCB application's tables (``eventsourcing.dcb``); reversed,
    drop them."""

    def describe(self) -> str:
        return (
            f"Create tables of DCB application {self.application_name} "
            f"({self._tables_description()})"
        )

    @property
    def migration_name_fragment(self) -> str:
        return f"create_{self.tables.prefix}_dcb_tables"


class DropDCBTables(DCBTablesOperation, DropApplicationTables):
    """Drop a DCB application's tables, and its events with them; reversed,
    create them again (empty)."""

    def describe(self) -> str:
        return (
            f"Drop tables of DCB application {self.application_name} "
            f"({self._tables_description()})"
        )

    @property
    def migration_name_fragment(self) -> str:
        return f"drop_{self.tables.prefix}_dcb_tables"


class UpgradeFromSharedTables(Operation):
    """Copy applications from the shared tables of eventsourcing-django 0.x into
    their own tables, as ``manage.py eventsourcing_upgrade`` does.

    It runs on each alias that ``migrate`` migrates and that holds the shared
    tables (elsewhere it does nothing), and asks the routers first, with the hint
    ``eventsourcing_upgrade``. Put it in a migration with ``atomic = False``, so
    that it commits as the command does and, after a failure, ``migrate`` goes on
    from what was committed (in an atomic migration, a failure undoes the whole
    copy). ``batch_size`` and ``commit_each_batch`` are the command's
    ``--batch-size`` and ``--commit-each-batch``. Reversed, it
    leaves the copies and the shared tables as they are; with
    ``drop_legacy=True`` it cannot be reversed.
    """

    category = OperationCategory.PYTHON
    reduces_to_sql = False

    def __init__(
        self,
        application_names: Sequence[str] = (),
        drop_legacy: bool = False,
        batch_size: int | None = None,
        commit_each_batch: bool = False,
    ) -> None:
        self.application_names = list(application_names)
        self.drop_legacy = drop_legacy
        self.batch_size = batch_size
        self.commit_each_batch = commit_each_batch

    def deconstruct(self) -> tuple[str, Sequence[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        if self.application_names:
            kwargs["application_names"] = self.application_names
        if self.drop_legacy:
            kwargs["drop_legacy"] = True
        if self.batch_size is not None:
            kwargs["batch_size"] = self.batch_size
        if self.commit_each_batch:
            kwargs["commit_each_batch"] = True
        return (self.__class__.__qualname__, [], kwargs)

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        pass

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        alias = schema_editor.connection.alias
        if not router.allow_migrate(alias, app_label, **{UPGRADE_HINT: True}):
            return
        if schema_editor.collect_sql:
            # sqlmigrate: the copy depends on what the tables hold.
            schema_editor.execute(f"-- {self.describe()}", params=None)
            return
        try:
            plan = plan_upgrade(
                alias,
                self.application_names,
                batch_size=self.batch_size or DEFAULT_BATCH_SIZE,
                commit_each_batch=self.commit_each_batch,
            )
        except NoSharedTablesError:
            return
        if plan.skipped:
            names = ", ".join(f"{s.name!r} ({s.reason})" for s in plan.skipped)
            if self.drop_legacy:
                msg = f"Not dropping the shared tables: skipped applications {names}"
                raise UpgradeError(msg)
            logger.warning("Left in the shared tables: %s", names)
        verified = []
        for copy in plan.copies:
            logger.info("%s: %s", copy.name, copy.run())
            verified.append(copy.name)
        if self.drop_legacy:
            drop_legacy_tables(plan, verified)

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if self.drop_legacy:
            msg = f"{self.describe()}: the shared tables are gone"
            raise IrreversibleError(msg)
        # The shared tables are still there: the copies do no harm, and
        # removing them could remove events written since.

    def describe(self) -> str:
        which = ", ".join(self.application_names) or "all applications"
        drop = ", then drop the shared tables" if self.drop_legacy else ""
        return f"Copy {which} from the shared tables of eventsourcing-django 0.x{drop}"

    @property
    def migration_name_fragment(self) -> str:
        return "upgrade_from_shared_tables"


__all__ = [
    "CreateApplicationTables",
    "CreateDCBTables",
    "DropApplicationTables",
    "DropDCBTables",
    "UpgradeFromSharedTables",
]
