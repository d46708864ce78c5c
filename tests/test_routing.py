"""Stories of routing applications to databases, and pinning them to schemas."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from django.db import connections, router, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from eventsourcing.persistence import NotSupportedError

from eventsourcing_django.builder import build_model
from eventsourcing_django.routers import EventSourcingRouter
from tests.base import (
    DjangoDBTestCase,
    count_rows,
    is_postgres,
    table_names,
)
from tests.routedapp.applications import Galaxy, Observatory, Universe
from tests.testapp.models import EventCounter

ROUTER = "eventsourcing_django.routers.EventSourcingRouter"
UNIVERSE_TABLES = {"universe_events"}


def universe_model(kind: Any = "events", name: str = "Universe") -> Any:
    return build_model(kind, f"{name.lower()}_{kind}", application_name=name)


@override_settings(
    DATABASE_ROUTERS=[ROUTER, "tests.routers.TenantLikeRouter"],
    EVENTSOURCING_DATABASES={"Universe": "other"},
)
class TestRouterAnswers(DjangoDBTestCase):
    """The router answers for the tables of the applications it is told about,
    and leaves everything else to the routers after it."""

    def test_reads_and_writes_of_a_listed_application_go_to_its_alias(self) -> None:
        for kind in ("events", "snapshots", "tracking"):
            self.assertEqual(router.db_for_write(universe_model(kind)), "other")
            self.assertEqual(router.db_for_read(universe_model(kind)), "other")

    def test_names_are_matched_ignoring_case_as_the_tables_are(self) -> None:
        model = universe_model(name="UNIVERSE")
        self.assertEqual(router.db_for_write(model), "other")

    def test_everything_else_is_left_to_the_next_router(self) -> None:
        ours = EventSourcingRouter()
        unlisted = universe_model(name="Elsewhere")
        self.assertIsNone(ours.db_for_write(unlisted))
        self.assertIsNone(ours.db_for_write(EventCounter))
        self.assertIsNone(ours.allow_migrate("other", "testapp", "eventcounter"))
        # The tenant-like router after ours decides.
        self.assertEqual(router.db_for_write(unlisted), "default")
        self.assertEqual(router.db_for_write(EventCounter), "default")
        self.assertFalse(router.allow_migrate("other", "testapp"))

    def test_allow_migrate_follows_the_hint_naming_the_application(self) -> None:
        def allowed(db: str, application: str) -> bool:
            return router.allow_migrate(
                db, "myapp", eventsourcing_application=application
            )

        self.assertTrue(allowed("other", "Universe"))
        self.assertFalse(allowed("default", "Universe"))
        # Not listed: the tenant-like router allows 'default' only.
        self.assertTrue(allowed("default", "Elsewhere"))
        self.assertFalse(allowed("other", "Elsewhere"))

    def test_allow_migrate_knows_the_application_from_its_model(self) -> None:
        model = universe_model()
        self.assertTrue(router.allow_migrate_model("other", model))
        self.assertFalse(router.allow_migrate_model("default", model))

    @override_settings(
        EVENTSOURCING_DATABASES={"Universe": "other", "Galaxy": "default"}
    )
    def test_rows_of_applications_on_different_aliases_cannot_relate(self) -> None:
        ours = EventSourcingRouter()
        universe = universe_model()()
        galaxy = universe_model(name="Galaxy")()
        self.assertTrue(ours.allow_relation(universe, universe_model("snapshots")()))
        self.assertFalse(ours.allow_relation(universe, galaxy))
        self.assertIsNone(ours.allow_relation(universe, EventCounter()))


@override_settings(
    DATABASE_ROUTERS=[ROUTER], EVENTSOURCING_DATABASES={"Universe": "other"}
)
class TestApplicationOnSecondDatabase(DjangoDBTestCase):
    databases: ClassVar[set[str]] = {"default", "other"}

    def test_tables_and_rows_are_only_on_the_routed_alias(self) -> None:
        app = Universe()
        self.assertEqual(app.recorder.using, "other")  # type: ignore[attr-defined]
        star = app.create_star("Sirius")
        app.rename_star(star, "Alpha Canis Majoris")

        self.assertEqual(table_names("other"), UNIVERSE_TABLES)
        self.assertEqual(table_names("default"), set())
        self.assertEqual(count_rows("other", "universe_events"), 2)
        self.assertEqual(app.star_name(star), "Alpha Canis Majoris")

    def test_every_statement_of_a_write_runs_on_the_routed_alias(self) -> None:
        app = Universe()
        with (
            CaptureQueriesContext(connections["default"]) as on_default,
            CaptureQueriesContext(connections["other"]) as on_other,
        ):
            app.create_star("Vega")
        self.assertEqual(on_default.captured_queries, [])
        statements = [q["sql"] for q in on_other.captured_queries]
        self.assertTrue(any("INSERT INTO" in s for s in statements), statements)
        if is_postgres("other"):
            # The lock that keeps notification IDs contiguous is taken there too.
            # (It travels in one execute with the insert.)
            self.assertTrue(any("LOCK TABLE" in s for s in statements), statements)

    def test_events_commit_and_roll_back_with_the_routed_alias(self) -> None:
        app = Universe()
        # A transaction on 'other' holds the events: rolled back, they are gone.
        with self.assertRaises(RuntimeError), transaction.atomic(using="other"):
            app.create_star("Betelgeuse")
            raise RuntimeError
        self.assertEqual(count_rows("other", "universe_events"), 0)
        # A transaction on 'default' has nothing to do with them.
        with self.assertRaises(RuntimeError), transaction.atomic(using="default"):
            app.create_star("Rigel")
            raise RuntimeError
        self.assertEqual(count_rows("other", "universe_events"), 1)

    def test_the_application_env_wins_over_the_setting(self) -> None:
        app = Universe(env={"DJANGO_DB_ALIAS": "default"})
        app.create_star("Polaris")
        self.assertEqual(app.recorder.using, "default")  # type: ignore[attr-defined]
        self.assertEqual(table_names("default"), UNIVERSE_TABLES)
        self.assertEqual(table_names("other"), set())

    @override_settings(
        EVENTSOURCING_DATABASES={"Universe": "other", "Galaxy": "default"}
    )
    def test_two_applications_on_two_aliases_work_at_once(self) -> None:
        universe, galaxy = Universe(), Galaxy()

        def work(app: Universe, n: int) -> list[str]:
            ids = [app.create_star(f"{app.name}-{n}-{i}") for i in range(5)]
            return [app.star_name(i) for i in ids]

        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [
                pool.submit(work, app, n)
                for n in range(4)
                for app in (universe, galaxy)
            ]
            names = [name for f in futures for name in f.result()]

        self.assertEqual(len(names), 40)
        self.assertEqual(table_names("other"), UNIVERSE_TABLES)
        self.assertEqual(table_names("default"), {"galaxy_events", "galaxy_snapshots"})
        self.assertEqual(count_rows("other", "universe_events"), 20)
        self.assertEqual(count_rows("default", "galaxy_events"), 20)
        notifications = universe.recorder.select_notifications(start=1, limit=100)
        self.assertEqual([n.id for n in notifications], list(range(1, 21)))

    @override_settings(EVENTSOURCING_DATABASES={"Observatory": "other"})
    def test_a_process_application_keeps_its_tracking_beside_its_events(
        self,
    ) -> None:
        Observatory()
        self.assertEqual(
            table_names("other"), {"observatory_events", "observatory_tracking"}
        )
        self.assertEqual(table_names("default"), set())


class TestSchemaPinning(DjangoDBTestCase):
    """An application pinned to a schema keeps its tables there, whatever the
    connection's search path says."""

    __test__ = is_postgres()  # Not collected on SQLite: it has no schemas.
    databases: ClassVar[set[str]] = {"default", "other"}
    schemas = ("es_universe", "es_from_env")

    def test_tables_are_made_in_the_schema_and_queries_stay_there(self) -> None:
        # A table of the same name in public, as a stale copy would be.
        Universe().create_star("Decoy")
        self.assertEqual(table_names("default", "public"), UNIVERSE_TABLES)

        with self.settings(EVENTSOURCING_SCHEMAS={"Universe": "es_universe"}):
            app = Universe()
        self.assertEqual(app.recorder.schema, "es_universe")  # type: ignore[attr-defined]
        # The search path finds public's table first, yet the pinned recorder
        # never touches it.
        with connections["default"].cursor() as cursor:
            cursor.execute("SET search_path TO public")
        self.addCleanup(self._reset_search_path)
        star = app.create_star("Deneb")

        self.assertEqual(table_names("default", "es_universe"), UNIVERSE_TABLES)
        self.assertEqual(count_rows("default", '"es_universe"."universe_events"'), 1)
        self.assertEqual(count_rows("default", "public.universe_events"), 1)
        self.assertEqual(app.star_name(star), "Deneb")
        notifications = app.notification_log.select(start=1, limit=10)
        self.assertEqual([n.originator_id for n in notifications], [star])

    def _reset_search_path(self) -> None:
        with connections["default"].cursor() as cursor:
            cursor.execute("SET search_path TO DEFAULT")

    @override_settings(
        DATABASE_ROUTERS=[ROUTER],
        EVENTSOURCING_DATABASES={"Universe": "other"},
        EVENTSOURCING_SCHEMAS={"Universe": "es_universe"},
    )
    def test_env_schema_wins_and_combines_with_routing(self) -> None:
        app = Universe(env={"DJANGO_SCHEMA": "es_from_env"})
        app.create_star("Altair")
        self.assertEqual(table_names("other", "es_from_env"), UNIVERSE_TABLES)
        self.assertEqual(table_names("other", "es_universe"), set())
        self.assertEqual(table_names("default", "es_from_env"), set())


class TestNoSchemasOnSQLite(DjangoDBTestCase):
    __test__ = not is_postgres()  # Collected on SQLite and MariaDB: no schemas.

    @override_settings(EVENTSOURCING_SCHEMAS={"Universe": "es_universe"})
    def test_pinning_an_application_to_a_schema_is_refused(self) -> None:
        with self.assertRaisesRegex(
            NotSupportedError, "(SQLite|MariaDB) has no schemas"
        ):
            Universe()
        self.assertEqual(table_names("default"), set())
