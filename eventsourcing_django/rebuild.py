"""Rebuilding a projection's view into fresh tables, then swapping them in.

``rebuild_projection --swap`` leaves the live read model alone while it
replays: each model of the view (``DjangoProjectionView.models``) gets an
empty copy of its table under a name of its own (the table's name and
``_r`` and six hex digits), the view writes there, and its position is
tracked under ``<application>__rebuild`` in the same tracking table. When it
has caught up, one transaction renames each live table aside, renames the
copy to the live name, drops the old table and moves the position over: a
reader sees the old rows until the commit, then the new ones.

Limits (see docs/decisions.md, "Projections at scale"): only views of
:class:`~eventsourcing_django.projections.DjangoProjectionView` with their
models listed; the models' ``db_table`` is switched in this process while it
builds, so run it in a process of its own (the command is); indexes keep the
names they were created with; a foreign key from another table to a view's
model would follow the old table and is refused; PostgreSQL and SQLite (DDL is
transactional on both, not on MariaDB).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models

from eventsourcing_django.projections import DjangoProjectionView, LoadedProjection
from eventsourcing_django.tenants import use_schema

#: Appended to the application's name to track the rebuild's position.
REBUILD_TRACKING_SUFFIX = "__rebuild"


@contextlib.contextmanager
def _db_table(model: type[models.Model], name: str) -> Iterator[None]:
    """Point ``model`` at table ``name`` in this process, for the block."""
    original = model._meta.db_table
    model._meta.db_table = name
    _forget_columns(model)
    try:
        yield
    finally:
        model._meta.db_table = original
        _forget_columns(model)


def _forget_columns(model: type[models.Model]) -> None:
    # Each field caches its column with the table's name (Field.cached_col).
    for field in model._meta.concrete_fields:
        field.__dict__.pop("cached_col", None)


class SwapRebuild:
    """Replays a projection into fresh tables; :meth:`swap` puts them live."""

    def __init__(self, projection: LoadedProjection) -> None:
        view = projection.tracking_recorder
        if not isinstance(view, DjangoProjectionView) or not view.models:
            msg = (
                f"Projection {projection.spec.name!r} cannot be rebuilt with --swap: "
                "its view must be a DjangoProjectionView that lists its models"
            )
            raise ImproperlyConfigured(msg)
        self.projection = projection
        self.view = view
        self.connection = connections[view.using]
        suffix = f"_r{secrets.token_hex(3)}"
        max_length = self.connection.ops.max_name_length() or 10_000
        self.fresh: dict[type[models.Model], str] = {}
        for model in view.models:
            self._refuse_references(model)
            name = f"{model._meta.db_table[: max_length - len(suffix)]}{suffix}"
            self.fresh[model] = name
        self.tracking_name = f"{projection.app.name}{REBUILD_TRACKING_SUFFIX}"

    def _refuse_references(self, model: type[models.Model]) -> None:
        for relation in model._meta.related_objects:
            if relation.related_model is not model:
                msg = (
                    f"{model.__name__} is referenced by "
                    f"{relation.related_model.__name__}: its rows would follow the "
                    "old table on a swap; rebuild without --swap"
                )
                raise ImproperlyConfigured(msg)

    def build(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Create the fresh tables and catch up into them; return how many
        events were processed. The live tables are not touched."""
        forget = self.view.dialect.delete_tracking_row_statement(
            self.view.tracking_table
        )
        with use_schema(self.connection, self.view.schema):
            with self.connection.schema_editor() as editor:
                for model, name in self.fresh.items():
                    with _db_table(model, name):
                        editor.create_model(model)
                # A rebuild cut off earlier left its position: start afresh.
                editor.execute(forget, [self.tracking_name])
            with contextlib.ExitStack() as stack:
                for model, name in self.fresh.items():
                    stack.enter_context(_db_table(model, name))
                self.projection.tracking_name = self.tracking_name
                try:
                    return self.projection.catch_up(progress=progress)
                finally:
                    self.projection.tracking_name = self.projection.app.name

    def swap(self) -> None:
        """Put the fresh tables and their position live, in one transaction."""
        dialect, table = self.view.dialect, self.view.tracking_table
        app_name = self.projection.app.name
        with (
            use_schema(self.connection, self.view.schema),
            self.connection.schema_editor() as editor,
        ):
            for model, name in self.fresh.items():
                live = model._meta.db_table
                old = f"{name}_old"
                editor.alter_db_table(model, live, old)
                editor.alter_db_table(model, name, live)
                with _db_table(model, old):
                    editor.delete_model(model)
            editor.execute(dialect.delete_tracking_row_statement(table), [app_name])
            editor.execute(
                dialect.rename_tracking_row_statement(table),
                [app_name, self.tracking_name],
            )

    def discard(self) -> None:
        """Drop the fresh tables (after a failed build)."""
        with (
            use_schema(self.connection, self.view.schema),
            self.connection.schema_editor() as editor,
        ):
            for model, name in self.fresh.items():
                with _db_table(model, name):
                    editor.delete_model(model)
            editor.execute(
                self.view.dialect.delete_tracking_row_statement(
                    self.view.tracking_table
                ),
                [self.tracking_name],
            )
