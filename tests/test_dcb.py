"""The library's DCB conformance suite (eventsourcing.dcb.tests) on our recorder:
plain, with the application routed to the second database, and (PostgreSQL)
pinned to a schema; and what our recorder adds to it."""

from __future__ import annotations

from typing import ClassVar

from django.db import transaction
from django.test import override_settings
from eventsourcing.dcb.api import (
    DCBAppendCondition,
    DCBEvent,
    DCBQuery,
    DCBQueryItem,
)
from eventsourcing.dcb.tests import DCBRecorderTestCase
from eventsourcing.persistence import IntegrityError, ProgrammingError
from eventsourcing.utils import Environment

from eventsourcing_django.dcb import DjangoDCBRecorder
from eventsourcing_django.factory import Factory
from tests.base import DjangoDBTestCase, factory_env, is_postgres, table_names

APPLICATION = "DCBTestApp"
SCHEMA = "es_dcb_conformance"


class TestDCBRecorder(DjangoDBTestCase, DCBRecorderTestCase):
    """The library's suite, on a recorder made by our factory."""

    databases: ClassVar[set[str]] = {"default"}
    expected_alias: ClassVar[str] = "default"
    expected_schema: ClassVar[str | None] = None

    def recorder(self) -> DjangoDCBRecorder:
        factory = Factory(Environment(APPLICATION, factory_env(APPLICATION)))
        recorder = factory.dcb_recorder()
        self.assertIsInstance(recorder, DjangoDCBRecorder)
        self.assertEqual(recorder.using, self.expected_alias)
        self.assertEqual(recorder.schema, self.expected_schema)
        return recorder

    def test_append_read(self) -> None:
        self._test_append_read(self.recorder())

    def test_append_subscribe(self) -> None:
        self._test_append_subscribe(self.recorder())


@override_settings(
    DATABASE_ROUTERS=["eventsourcing_django.routers.EventSourcingRouter"],
    EVENTSOURCING_DATABASES={APPLICATION: "other"},
)
class TestRoutedDCBRecorder(TestDCBRecorder):
    databases: ClassVar[set[str]] = {"default", "other"}
    expected_alias = "other"

    def tearDown(self) -> None:
        super().tearDown()
        # Nothing of the application's ever reached 'default'.
        self.assertEqual(table_names("default"), set())
        self.assertEqual(
            table_names("other", self.expected_schema),
            {"dcbtestapp_dcb", "dcbtestapp_dcb_tags"},
        )


@override_settings(EVENTSOURCING_SCHEMAS={APPLICATION: SCHEMA})
class TestPinnedDCBRecorder(TestRoutedDCBRecorder):
    __test__ = is_postgres()
    expected_schema = SCHEMA
    schemas: ClassVar[tuple[str, ...]] = (SCHEMA,)


def tagged(type_: str, *tags: str) -> DCBEvent:
    return DCBEvent(type=type_, data=type_.encode(), tags=list(tags))


class TestDCBRecorderBeyondTheSuite(DjangoDBTestCase):
    """What the library's suite does not ask: queries its PostgreSQL module
    refuses, Django transactions, and bad input."""

    def setUp(self) -> None:
        super().setUp()
        self.recorder = Factory(
            Environment(APPLICATION, factory_env(APPLICATION))
        ).dcb_recorder()

    def positions(self, *items: DCBQueryItem, after: int = 0) -> list[int]:
        return [
            e.position for e in self.recorder.read(DCBQuery(list(items)), after=after)
        ]

    def test_queries_of_any_shape(self) -> None:
        self.recorder.append(
            [
                tagged("A", "x"),
                tagged("B", "x", "y"),
                tagged("C", "y", "z"),
                tagged("A"),
                tagged("D", "z", "z"),
            ]
        )
        # Several types, no tags (eventsourcing.dcb.postgres_tt refuses this).
        self.assertEqual(self.positions(DCBQueryItem(types=["A", "C"])), [1, 3, 4])
        # An item by type or'ed with an item by tags.
        self.assertEqual(
            self.positions(DCBQueryItem(types=["A"]), DCBQueryItem(tags=["y", "z"])),
            [1, 3, 4],
        )
        # Two tags, a type among several, after a position.
        self.assertEqual(
            self.positions(DCBQueryItem(types=["B", "C"], tags=["y"]), after=2), [3]
        )
        # A tag given twice in an event or a query counts once.
        self.assertEqual(self.positions(DCBQueryItem(tags=["z", "z"])), [3, 5])
        # An item with neither types nor tags matches everything.
        self.assertEqual(
            self.positions(DCBQueryItem(tags=["nothing"]), DCBQueryItem()),
            [1, 2, 3, 4, 5],
        )
        # Tags come back in the order they were given.
        last = list(self.recorder.read(after=4))
        self.assertEqual(last[0].event.tags, ["z", "z"])

    def test_append_in_a_django_transaction_rolls_back_with_it(self) -> None:
        alias = self.recorder.using

        class Abandon(Exception):
            pass

        with self.assertRaises(Abandon), transaction.atomic(using=alias):
            self.recorder.append([tagged("A", "x")])
            self.assertEqual(self.positions(), [1])
            raise Abandon
        self.assertEqual(self.positions(), [])
        # Positions stay contiguous on every database but PostgreSQL, whose
        # sequence does not roll back (as with notification IDs).
        position = self.recorder.append([tagged("A", "x")])
        self.assertEqual(self.positions(), [position])

    def test_condition_failure_in_a_transaction_writes_nothing(self) -> None:
        self.recorder.append([tagged("A", "x")])
        condition = DCBAppendCondition(DCBQuery([DCBQueryItem(tags=["x"])]))
        with (
            self.assertRaises(IntegrityError),
            transaction.atomic(using=self.recorder.using),
        ):
            self.recorder.append([tagged("B", "x")], condition)
        self.assertEqual(self.positions(), [1])
        self.assertEqual(self.positions(DCBQueryItem(types=["B"])), [])

    def test_bad_input_is_refused_before_anything_is_written(self) -> None:
        with self.assertRaisesRegex(ProgrammingError, "no events given"):
            self.recorder.append([])
        for event in (
            DCBEvent(type="", data=b""),
            DCBEvent(type="A", data=b"", tags=[""]),
            DCBEvent(type="A", data=b"", tags=[1]),  # type: ignore[list-item]
        ):
            with self.assertRaisesRegex(ProgrammingError, "non-empty strings"):
                self.recorder.append([tagged("A", "ok"), event])
        longest = self.recorder.dialect.max_dcb_key_chars
        if longest is not None:  # MariaDB
            with self.assertRaisesRegex(ProgrammingError, f"up to {longest} char"):
                self.recorder.append([tagged("A", "t" * (longest + 1))])
            self.recorder.append([tagged("A", "t" * longest)])
            self.assertEqual(self.positions(DCBQueryItem(tags=["t" * longest])), [1])
        else:
            self.assertEqual(self.positions(), [])
