"""Schema-per-tenant: each tenant's events in its own schema, never leaked."""

from __future__ import annotations

import threading
import time
from typing import Any
from uuid import UUID, uuid4

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.tests.persistence import (
    ApplicationRecorderTestCase,
    NonInterleavingNotificationIDsBaseCase,
)

from eventsourcing_django.errors import TableMissingError
from eventsourcing_django.recorders import DjangoApplicationRecorder
from eventsourcing_django.tables import InvalidSchemaNameError
from eventsourcing_django.tenants import (
    get_application,
    get_tenant_application,
)
from tests.testapp.domain import Universe
from tests_tenants.conftest import TENANTS, host


def count_rows(schema: str, table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{schema}"."{table}"')
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def test_the_same_application_in_each_tenant_keeps_its_own_events() -> None:
    worlds: dict[str, list[UUID]] = {}
    for n, schema in enumerate(TENANTS, start=1):
        connection.set_schema(schema)
        universe = get_application(Universe)
        assert universe is get_application(Universe)  # one instance per tenant
        worlds[schema] = [universe.create_world() for _ in range(n)]
        # Notification IDs start at 1 in each tenant.
        assert [n.id for n in universe.recorder.select_notifications(None, 10)] == list(
            range(1, n + 1)
        )
    connection.set_schema_to_public()
    for n, schema in enumerate(TENANTS, start=1):
        universe = get_tenant_application(Universe, schema)
        log = universe.recorder.select_notifications(None, 100)
        assert {e.originator_id for e in log} == set(worlds[schema])
        assert count_rows(schema, "universe_events") == n
        other = TENANTS[n % len(TENANTS)]
        with pytest.raises(Exception, match="not found"):
            universe.repository.get(worlds[other][0])
    assert count_rows("public", "universe_events") == 0


def test_a_thread_that_never_switched_tenant_uses_the_applications_schema() -> None:
    universe_b = get_tenant_application(Universe, "tenant_b")
    results: dict[str, Any] = {}

    def work() -> None:
        # This thread's connection starts in public, as django-tenants leaves it.
        results["schema"] = connections["default"].schema_name
        world_id = universe_b.create_world()
        universe_b.make_it_so(world_id, "in b")
        results["history"] = universe_b.repository.get(world_id).history

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert results == {"schema": "public", "history": ["in b"]}
    assert count_rows("tenant_b", "universe_events") == 2
    assert count_rows("public", "universe_events") == 0

    # The connection switched to tenant C: B's application still touches only B.
    connection.set_schema("tenant_c")
    universe_b.create_world()
    assert universe_b.recorder.max_notification_id() == 3
    connection.set_schema_to_public()
    assert count_rows("tenant_b", "universe_events") == 3
    assert count_rows("tenant_c", "universe_events") == 0


def test_a_tenant_whose_table_was_dropped_gets_an_error_and_public_is_untouched() -> (
    None
):
    public = get_tenant_application(Universe, "public")
    public.create_world()
    before = count_rows("public", "universe_events")
    universe_c = get_tenant_application(Universe, "tenant_c")
    universe_c.create_world()
    with connection.cursor() as cursor:
        cursor.execute('DROP TABLE "tenant_c"."universe_events"')
    try:
        with pytest.raises(TableMissingError, match="schema 'tenant_c'"):
            universe_c.create_world()
        with pytest.raises(TableMissingError):
            universe_c.recorder.select_notifications(None, 10)
        # A tenant application made afresh does not create it quietly either.
        connection.set_schema("tenant_c")
        fresh = get_application(Universe, env={"AGGREGATE_CACHE_MAXSIZE": "0"})
        with pytest.raises(TableMissingError):
            fresh.create_world()
        connection.set_schema_to_public()
        assert count_rows("public", "universe_events") == before
    finally:
        connection.set_schema_to_public()
        call_command(
            "eventsourcing_tables",
            "create",
            "Universe",
            "--schema",
            "tenant_c",
            verbosity=0,
        )


def test_a_cloned_tenant_starts_empty_with_ids_from_1(settings: Any) -> None:
    from tests_tenants.customers.models import Client

    template = get_tenant_application(Universe, "tenant_a")
    for _ in range(3):
        template.create_world()
    settings.TENANT_BASE_SCHEMA = "tenant_a"
    settings.TENANT_CREATION_FAKES_MIGRATIONS = True
    clone = Client.objects.create(schema_name="tenant_clone", name="clone")
    try:
        assert count_rows("tenant_clone", "universe_events") == 0
        universe = get_tenant_application(Universe, "tenant_clone")
        assert universe.recorder.max_notification_id() is None
        universe.create_world()
        assert [n.id for n in universe.recorder.select_notifications(None, 10)] == [1]
        assert count_rows("tenant_a", "universe_events") == 3
    finally:
        settings.TENANT_BASE_SCHEMA = None
        connection.set_schema_to_public()
        clone.delete()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_clone'")
        assert cursor.fetchone() is None  # dropping the tenant dropped its tables


def test_writers_in_two_tenants_do_not_wait_for_each_others_lock() -> None:
    a = get_tenant_application(Universe, "tenant_a").recorder
    b = get_tenant_application(Universe, "tenant_b").recorder
    holding, release = threading.Event(), threading.Event()

    def hold_a() -> None:
        from django.db import transaction

        with transaction.atomic():
            a.insert_events([StoredEvent(uuid4(), 1, "t", b"s")])
            holding.set()
            release.wait(10)
        connections.close_all()

    holder = threading.Thread(target=hold_a)
    holder.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        assert b.insert_events([StoredEvent(uuid4(), 1, "t", b"s")]) == [1]
        assert time.monotonic() - started < 2
    finally:
        release.set()
        holder.join()


def test_a_subscription_in_tenant_a_hears_nothing_of_tenant_b() -> None:
    a = get_tenant_application(Universe, "tenant_a")
    b = get_tenant_application(Universe, "tenant_b")
    received: list[Any] = []
    with a.recorder.subscribe(gt=None) as subscription:

        def read() -> None:
            for notification in subscription:
                received.append(notification)

        reader = threading.Thread(target=read)
        reader.start()
        for _ in range(3):
            b.create_world()
        time.sleep(1.5)  # longer than the poll interval
        assert received == []
        a.create_world()
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        subscription.stop()
        reader.join()
    assert [n.id for n in received] == [1]
    assert a.recorder.channel != b.recorder.channel


@pytest.mark.parametrize(
    "schema", ['tenant"; DROP SCHEMA public CASCADE; --', "x" * 64, "a b", "t'q"]
)
def test_hostile_schema_names_are_refused_before_any_sql(schema: str) -> None:
    with (
        CaptureQueriesContext(connection) as queries,
        pytest.raises(InvalidSchemaNameError),
    ):
        get_tenant_application(Universe, schema)
    assert len(queries) == 0


def test_hostile_application_names_are_refused_before_any_sql() -> None:
    class Hostile(Universe):
        name = "Uni'verse;"

    with CaptureQueriesContext(connection) as queries, pytest.raises(ValueError):
        get_tenant_application(Hostile, "tenant_a")
    assert len(queries) == 0


def test_a_view_uses_the_application_of_the_requests_tenant() -> None:
    for schema in ("tenant_a", "tenant_b", "tenant_b"):
        response = HttpClient(HTTP_HOST=host(schema)).get("/worlds/")
        assert response.status_code == 200
    assert count_rows("tenant_a", "universe_events") == 2
    assert count_rows("tenant_b", "universe_events") == 4
    assert count_rows("public", "universe_events") == 0


def test_an_env_that_pins_another_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="pinned to its tenant's schema"):
        get_tenant_application(Universe, "tenant_a", env={"DJANGO_SCHEMA": "tenant_b"})


def test_tracking_only_advances_inside_a_tenant() -> None:
    from eventsourcing.persistence import Tracking

    from eventsourcing_django.recorders import DjangoTrackingRecorder

    recorder = DjangoTrackingRecorder("WorldSummary", schema="tenant_a")
    recorder.insert_tracking(Tracking("Universe", 5))
    with pytest.raises(IntegrityError):
        recorder.insert_tracking(Tracking("Universe", 5))
    assert (
        DjangoTrackingRecorder("WorldSummary", schema="tenant_b").max_tracking_id(
            "Universe"
        )
        is None
    )


class TestApplicationRecorderInATenant(ApplicationRecorderTestCase[Any]):
    def create_recorder(self) -> DjangoApplicationRecorder:
        return DjangoApplicationRecorder("Universe", schema="tenant_b")

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestNonInterleavingInATenant(NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> DjangoApplicationRecorder:
        return DjangoApplicationRecorder("Universe", schema="tenant_c")


del ApplicationRecorderTestCase, NonInterleavingNotificationIDsBaseCase


def test_commands_run_per_tenant_and_for_all_tenants() -> None:
    from io import StringIO

    from django.core.management import execute_from_command_line

    from tests_tenants.shop.models import WorldSummary

    for schema, worlds in (("tenant_a", 1), ("tenant_b", 2)):
        universe = get_tenant_application(Universe, schema)
        for _ in range(worlds):
            universe.make_it_so(universe.create_world(), "x")

    # One tenant: django-tenants' tenant_command sets the tenant, ours follows it.
    out = StringIO()
    call_command(
        "tenant_command",
        "eventsourcing_tables",
        "list",
        "Universe",
        schema_name="tenant_b",
        stdout=out,
    )
    assert "schema 'tenant_b'" in out.getvalue()

    # Every tenant: each catches its own projection up, in its own schema.
    # (as from the command line, which passes the wrapped command's options on)
    execute_from_command_line(
        [
            "manage.py",
            "all_tenants_command",
            "run_projections",
            "WorldSummary",
            "--catch-up-only",
            "--verbosity=0",
        ]
    )
    counts = {}
    for schema in TENANTS:
        connection.set_schema(schema)
        counts[schema] = sorted(
            WorldSummary.objects.values_list("history_length", flat=True)
        )
    connection.set_schema_to_public()
    assert counts == {"tenant_a": [1], "tenant_b": [1, 1], "tenant_c": []}
    assert count_rows("public", "shop_worldsummary") == 0


def test_a_tenant_instance_is_built_from_the_declaration() -> None:
    schema = TENANTS[0]
    # By name or by class: the same instance, with the declared compressor.
    universe = get_tenant_application("Universe", schema)
    assert universe is get_tenant_application(Universe, schema)
    assert universe.mapper.compressor is not None
    world_id = universe.create_world()
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT state FROM "{schema}"."universe_events" WHERE originator_id = %s',
            [world_id],
        )
        row = cursor.fetchone()
    assert row is not None
    # zlib's header, not JSON: the stored state went through the compressor.
    assert bytes(row[0])[:1] == b"\x78"


def test_the_event_store_pages_show_only_the_requests_tenant() -> None:
    from django.contrib.auth.models import User

    worlds = {}
    for schema in TENANTS[:2]:
        worlds[schema] = get_tenant_application("Universe", schema).create_world()
    connection.set_schema_to_public()
    admin = User.objects.create_superuser(f"root{uuid4().hex[:8]}", password="x")
    try:
        for schema, other in ((TENANTS[0], TENANTS[1]), (TENANTS[1], TENANTS[0])):
            client = HttpClient(HTTP_HOST=host(schema))
            client.force_login(admin)
            page = client.get("/admin/eventsourcing_django/eventstore/Universe/")
            assert page.status_code == 200
            text = page.content.decode()
            assert f"schema <strong>{schema}</strong>" in text
            assert str(worlds[schema]) in text
            assert str(worlds[other]) not in text
            history = client.get(
                f"/admin/eventsourcing_django/eventstore/Universe/aggregates/{worlds[other]}/"
            )
            assert history.status_code == 404
    finally:
        connection.set_schema_to_public()
        admin.delete()
