"""The factory's environment keys, its errors, and the tables it makes."""

from __future__ import annotations

import time
from io import StringIO
from typing import Any
from uuid import uuid4

from django.core.management import call_command
from django.db import connections, transaction
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from eventsourcing.utils import Environment

from eventsourcing_django.errors import TableMissingError
from eventsourcing_django.factory import Factory
from eventsourcing_django.models import (
    NotificationTrackingRecord,
    SnapshotRecord,
    StoredEventRecord,
)
from eventsourcing_django.recorders import (
    DjangoApplicationRecorder,
    DjangoProcessRecorder,
)
from tests.base import DjangoDBTestCase, is_postgres

ENV = {"PERSISTENCE_MODULE": "eventsourcing_django"}


def table_names(alias: str = "default") -> set[str]:
    connection = connections[alias]
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


class Universe(Application):
    snapshotting_intervals = {Aggregate: 2}  # noqa: RUF012


class TestTablesPerApplication(DjangoDBTestCase):
    def test_each_application_gets_its_own_three_tables(self) -> None:
        universe = Universe(env=ENV)
        universe.save(Aggregate())
        universe.factory.tracking_recorder()
        other = Application(env=ENV)
        other.save(Aggregate())
        names = table_names()
        self.assertTrue(
            {
                "universe_events",
                "universe_snapshots",
                "universe_tracking",
                "application_events",
            }
            <= names
        )
        # Each application numbers its own notifications from 1.
        self.assertEqual(universe.recorder.max_notification_id(), 1)
        self.assertEqual(other.recorder.max_notification_id(), 1)

    def test_models_are_subclasses_of_the_abstract_bases_and_query_the_tables(
        self,
    ) -> None:
        universe = Universe(env=ENV)
        aggregate = Aggregate()
        aggregate.trigger_event(Aggregate.Event)
        universe.save(aggregate)
        recorder = universe.events.recorder
        assert isinstance(recorder, DjangoApplicationRecorder)
        events_model = recorder.model
        snapshots_model = universe.snapshots.recorder.model  # type: ignore[attr-defined]
        self.assertTrue(issubclass(events_model, StoredEventRecord))
        self.assertTrue(issubclass(snapshots_model, SnapshotRecord))
        rows = list(
            events_model.objects.using(recorder.using)
            .filter(originator_id=aggregate.id)
            .order_by("originator_version")
            .values_list("originator_version", "notification_id")
        )
        self.assertEqual(rows, [(1, 1), (2, 2)])
        self.assertEqual(snapshots_model.objects.using(recorder.using).count(), 1)
        # Built once per table and reused.
        self.assertIs(Universe(env=ENV).events.recorder.model, events_model)  # type: ignore[attr-defined]
        tracking = universe.factory.tracking_recorder()
        tracking.insert_tracking(Tracking("Upstream", 7))
        self.assertTrue(issubclass(tracking.tracking_model, NotificationTrackingRecord))
        self.assertEqual(
            tracking.tracking_model.objects.using(tracking.using)
            .get(application_name="Upstream")
            .notification_id,
            7,
        )

    def test_makemigrations_does_not_see_per_application_models(self) -> None:
        Universe(env=ENV).save(Aggregate())
        out = StringIO()
        call_command("makemigrations", "--check", "--dry-run", stdout=out)
        self.assertIn("No changes detected", out.getvalue())

    def test_create_table_is_idempotent(self) -> None:
        Universe(env=ENV).save(Aggregate())
        app = Universe(env=ENV)
        self.assertEqual(app.recorder.max_notification_id(), 1)


class TestCreateTableOff(DjangoDBTestCase):
    def test_first_write_names_the_missing_table_and_how_to_create_it(self) -> None:
        app = Universe(env={**ENV, "CREATE_TABLE": "no"})
        self.assertNotIn("universe_events", table_names())
        with self.assertRaises(TableMissingError) as info:
            app.save(Aggregate())
        message = str(info.exception)
        self.assertIn("'universe_events'", message)
        self.assertIn("Universe", message)
        self.assertIn("CreateApplicationTables('Universe')", message)
        self.assertIn("CREATE_TABLE", message)

        # Once the tables exist, the same application works.
        Universe(env=ENV)
        app.save(Aggregate())
        self.assertEqual(app.recorder.max_notification_id(), 1)


class TestEnvironment(DjangoDBTestCase):
    def test_invalid_lock_timeout_is_refused(self) -> None:
        for value in ("soon", "-1", "nan"):
            with self.assertRaises(ValueError) as info:
                Universe(env={**ENV, "DJANGO_LOCK_TIMEOUT": value})
            self.assertIn("DJANGO_LOCK_TIMEOUT", str(info.exception))

    def test_unknown_alias_is_refused(self) -> None:
        with self.assertRaises(ValueError) as info:
            Universe(env={**ENV, "DJANGO_DB_ALIAS": "nowhere"})
        self.assertIn("'nowhere'", str(info.exception))

    def test_invalid_originator_id_type_is_refused(self) -> None:
        with self.assertRaises(ValueError) as info:
            Universe(env={**ENV, "ORIGINATOR_ID_TYPE": "int"})
        self.assertIn("ORIGINATOR_ID_TYPE", str(info.exception))

    def test_text_originator_ids_round_trip(self) -> None:
        factory = Factory(Environment("Texts", {**ENV, "ORIGINATOR_ID_TYPE": "text"}))
        recorder = factory.application_recorder()
        stored = StoredEvent("order-1", 1, "topic", b"state")
        self.assertEqual(recorder.insert_events([stored]), [1])
        self.assertEqual(recorder.select_events("order-1"), [stored])
        self.assertEqual(
            recorder.select_notifications(1, 1)[0].originator_id, "order-1"
        )

    def test_recorder_topic_must_name_one_of_ours(self) -> None:
        with self.assertRaises(TypeError) as info:
            Universe(
                env={
                    **ENV,
                    "APPLICATION_RECORDER_TOPIC": (
                        "eventsourcing.popo:POPOApplicationRecorder"
                    ),
                }
            )
        self.assertIn("DjangoApplicationRecorder", str(info.exception))

    def test_process_recorder_topic_and_lock_timeout_are_used(self) -> None:
        factory = Factory(Environment("Proc", {**ENV, "DJANGO_LOCK_TIMEOUT": "2.5"}))
        recorder = factory.process_recorder()
        self.assertIsInstance(recorder, DjangoProcessRecorder)
        assert isinstance(recorder, DjangoProcessRecorder)
        self.assertEqual(recorder.lock_timeout, 2.5)
        if is_postgres():
            self.assertIn("2500ms", " ".join(recorder._lock_statements))


class TestTransactions(DjangoDBTestCase):
    def test_events_join_the_callers_transaction(self) -> None:
        app = Universe(env=ENV)
        with self.assertRaises(RuntimeError), transaction.atomic():
            app.save(Aggregate())
            raise RuntimeError("roll back")
        self.assertIsNone(app.recorder.max_notification_id())

    def test_a_failed_batch_writes_none_of_its_rows(self) -> None:
        recorder = Universe(env=ENV).recorder
        originator_id = uuid4()
        recorder.insert_events([StoredEvent(originator_id, 2, "t", b"s")])
        batch = [
            StoredEvent(uuid4(), 1, "t", b"s"),
            StoredEvent(originator_id, 2, "t", b"s"),  # conflicts
        ]
        with self.assertRaises(IntegrityError):
            recorder.insert_events(batch)
        self.assertEqual(len(recorder.select_notifications(None, 10)), 1)
        self.assertEqual(recorder.select_events(batch[0].originator_id), [])

    def test_process_recorder_writes_tracking_and_events_together(self) -> None:
        factory = Factory(Environment("Proc", ENV))
        recorder = factory.process_recorder()
        event = StoredEvent(uuid4(), 1, "t", b"s")
        recorder.insert_events([event], tracking=Tracking("Up", 5))
        # Tracking that does not advance fails, and its events are not written.
        with self.assertRaises(IntegrityError):
            recorder.insert_events(
                [StoredEvent(uuid4(), 1, "t", b"s")], tracking=Tracking("Up", 5)
            )
        self.assertEqual(recorder.max_tracking_id("Up"), 5)
        self.assertEqual(len(recorder.select_notifications(None, 10)), 1)


class TestConcurrentStart(DjangoDBTestCase):
    def test_applications_starting_at_once_create_the_tables_once(self) -> None:
        import threading

        from django.db import connections as db_connections

        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def slow_ddl(execute: Any, sql: str, *args: Any) -> Any:
            result = execute(sql, *args)
            if sql.startswith("CREATE TABLE"):
                time.sleep(0.1)  # widen the window in which creators could race
            return result

        def start() -> None:
            try:
                barrier.wait(timeout=10)
                with db_connections["default"].execute_wrapper(slow_ddl):
                    Universe(env=ENV)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)
            finally:
                db_connections.close_all()

        threads = [threading.Thread(target=start) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(errors, [])
        self.assertTrue({"universe_events", "universe_snapshots"} <= table_names())
        app = Universe(env=ENV)
        app.save(Aggregate())
        self.assertEqual(app.recorder.max_notification_id(), 1)
