"""The event store in the admin, and ``eventsourcing_status``, as staff see them."""

from __future__ import annotations

import json
import os
import re
import socket
from datetime import timedelta
from io import StringIO
from typing import Any
from uuid import UUID, uuid4

from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from eventsourcing.cipher import AESCipher
from eventsourcing.persistence import StoredEvent

from eventsourcing_django.applications import close_applications, get_application
from eventsourcing_django.models import ProjectionWorker
from tests.base import DjangoDBTestCase
from tests.testapp.domain import Universe

SEALED = {
    "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
    "CIPHER_TOPIC": "eventsourcing.cipher:AESCipher",
    "CIPHER_KEY": AESCipher.create_key(16),
}
APPLICATIONS = {"Universe": {"class": "tests.testapp.domain:Universe", "env": SEALED}}
XSS = "<script>alert('owned')</script>"
LONG = "x" * 300 + "THE-END"
BASE = "/admin/eventsourcing_django/eventstore/"


def make_user(name: str, *, staff: bool, permitted: bool = False) -> User:
    user = User.objects.create_user(name, password="secret", is_staff=staff)
    if permitted:
        user.user_permissions.add(Permission.objects.get(codename="view_event_store"))
    return user


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@override_settings(EVENTSOURCING_APPLICATIONS=APPLICATIONS)
class TestEventStoreAdmin(DjangoDBTestCase):
    def setUp(self) -> None:
        close_applications()
        self.addCleanup(close_applications)
        self.universe = get_application(Universe)
        self.world_id = self.universe.create_world()
        for what in ("dinosaurs", XSS, LONG):
            self.universe.make_it_so(self.world_id, what)
        self.admin = client_for(
            User.objects.create_superuser("root", password="secret")
        )

    def get(self, path: str, client: Client | None = None) -> str:
        response = (client or self.admin).get(BASE + path)
        self.assertEqual(response.status_code, 200, path)
        return response.content.decode()

    def test_the_index_lists_the_declared_applications(self) -> None:
        page = self.get("")
        self.assertIn(f'href="{BASE}Universe/"', page)
        self.assertIn("universe_events, universe_snapshots", page)
        self.assertIn('<td class="head">4</td>', page)
        # The admin's home page links to the section.
        home = self.admin.get("/admin/").content.decode()
        self.assertIn(BASE, home)
        self.assertIn("Event store", home)

    def test_an_aggregate_history_is_decoded_escaped_and_folded(self) -> None:
        # What the database holds is neither readable nor compressed JSON.
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT state FROM universe_events")
            states = [bytes(row[0]) for row in cursor.fetchall()]
        self.assertFalse(any(b"dinosaurs" in s for s in states))

        page = self.get(f"Universe/aggregates/{self.world_id}/")
        self.assertIn("World.SomethingHappened", page)
        self.assertIn("&#x27;dinosaurs&#x27;", page)
        self.assertNotIn("<script>alert", page)
        self.assertIn("&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;", page)
        # A long value shows its start, and all of it when unfolded.
        self.assertRegex(page, r"<summary><code>&#x27;x{199}…</code></summary>")
        self.assertIn("THE-END", page)

    def test_snapshots_are_shown_beside_the_events(self) -> None:
        self.universe.make_it_so(self.world_id, "trucks")  # version 5: a snapshot
        page = self.get(f"Universe/aggregates/{self.world_id}/")
        self.assertIn('id="snapshots"', page)
        self.assertIn("&#x27;trucks&#x27;", page)

    def test_the_log_is_filtered_by_topic_and_originator(self) -> None:
        other = self.universe.create_world()
        page = self.get(f"Universe/?originator_id={other}")
        self.assertEqual(page.count("/aggregates/"), 1)
        topic = "tests.testapp.domain:World.SomethingHappened"
        page = self.get(f"Universe/?topic={topic}")
        self.assertEqual(page.count("/aggregates/"), 3)
        page = self.get("Universe/?originator_id=not-a-uuid")
        self.assertIn("is not a UUID", page)

    def test_paging_past_10000_events_counts_nothing(self) -> None:
        recorder = self.universe.recorder
        events = [
            StoredEvent(uuid4(), 1, "tests.testapp.domain:World.Created", b"{}")
            for _ in range(10_050)
        ]
        for start in range(0, len(events), 1000):
            recorder.insert_events(events[start : start + 1000])
        with CaptureQueriesContext(connection) as queries:
            first = self.get("Universe/")
        # Read now: the next request resets the connection's query log.
        sql = [q["sql"].upper() for q in queries.captured_queries]
        older = re.search(r'href="\?before=(\d+)"', first)
        assert older is not None
        self.assertEqual(int(older.group(1)), 10_054 - 49)
        with CaptureQueriesContext(connection) as more:
            page = self.get("Universe/?before=60")
        sql += [q["sql"].upper() for q in more.captured_queries]
        self.assertIn('id="newer"', page)
        self.assertEqual(page.count("/aggregates/"), 50)
        self.assertIn("<td>59</td>", page)
        self.assertNotIn("<td>60</td>", page)
        newer = self.get("Universe/?after=9")
        self.assertIn("<td>59</td>", newer)
        self.assertIn("<td>10</td>", newer)
        self.assertTrue(any("NOTIFICATION_ID" in s for s in sql))
        self.assertFalse([s for s in sql if "COUNT(" in s])

    def test_projections_show_position_head_lag_and_worker(self) -> None:
        call_command("run_projections", "WorldSummary", "--catch-up-only", verbosity=0)
        self.universe.make_it_so(self.world_id, "trucks")
        ProjectionWorker.objects.create(
            name="WorldSummary",
            pid=os.getpid(),
            host=socket.gethostname(),
            heartbeat_at=timezone.now(),
            heartbeat_interval=5,
        )
        page = self.get("projections/")
        row = re.search(r"<th scope=\"row\">WorldSummary</th>(.*?)</tr>", page, re.S)
        assert row is not None
        self.assertIn('<td class="position">4</td>', row.group(1))
        self.assertIn('<td class="head">5</td>', row.group(1))
        self.assertIn('<td class="lag">1</td>', row.group(1))
        self.assertIn(f"alive:\nprocess {os.getpid()}", row.group(1))

    def test_only_staff_with_the_permission_see_it(self) -> None:
        anonymous = Client()
        member = client_for(make_user("member", staff=False))
        staff = client_for(make_user("staff", staff=True))
        reader = client_for(make_user("reader", staff=True, permitted=True))
        for path in (
            "",
            "projections/",
            "Universe/",
            f"Universe/aggregates/{self.world_id}/",
        ):
            with self.subTest(path=path):
                self.assertEqual(anonymous.get(BASE + path).status_code, 302)
                self.assertEqual(member.get(BASE + path).status_code, 302)
                self.assertEqual(staff.get(BASE + path).status_code, 403)
                self.assertEqual(reader.get(BASE + path).status_code, 200)
        self.assertNotIn(BASE, staff.get("/admin/").content.decode())

    def test_nothing_can_be_changed(self) -> None:
        for path in (
            "",
            "projections/",
            "Universe/",
            f"Universe/aggregates/{self.world_id}/",
        ):
            with self.subTest(path=path):
                self.assertEqual(self.admin.post(BASE + path).status_code, 405)
                page = self.get(path)
                forms = re.findall(r"<form[^>]*>", page)
                # The admin's own logout form is the only one that posts.
                posting = [f for f in forms if 'method="post"' in f]
                self.assertTrue(all("logout" in f for f in posting), posting)
        for suffix in ("add/", "1/change/", "1/delete/"):
            self.assertIn(self.admin.get(BASE + suffix).status_code, (403, 404))

    def test_unknown_applications_and_aggregates_are_not_found(self) -> None:
        self.assertEqual(self.admin.get(BASE + "Nowhere/").status_code, 404)
        self.assertEqual(
            self.admin.get(BASE + f"Universe/aggregates/{uuid4()}/").status_code, 404
        )


def run_status(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("eventsourcing_status", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


class TestStatusCommand(DjangoDBTestCase):
    def setUp(self) -> None:
        close_applications()
        self.addCleanup(close_applications)
        universe = get_application(Universe)
        self.world_id: UUID = universe.create_world()
        universe.make_it_so(self.world_id, "dinosaurs")
        call_command("run_projections", "WorldSummary", "--catch-up-only", verbosity=0)
        universe.make_it_so(self.world_id, "trucks")

    def register_worker(self, **fields: Any) -> None:
        defaults: dict[str, Any] = {
            "name": "WorldSummary",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "heartbeat_at": timezone.now(),
            "heartbeat_interval": 5,
        }
        ProjectionWorker.objects.create(**{**defaults, **fields})

    def test_the_table(self) -> None:
        self.register_worker()
        out, _ = run_status()
        self.assertIn("Applications", out)
        self.assertRegex(out, r"Universe\s+default\s+-\s+3\s+universe_events")
        self.assertRegex(out, r"WorldSummary\s+Universe\s+2\s+3\s+1\s+alive \(process")
        self.assertRegex(out, r"Counters\s+Universe\s+0\s+3\s+3\s+none")

    def test_json_and_a_lag_within_bounds(self) -> None:
        out, _ = run_status("--json", "--max-lag", "3")
        report = json.loads(out)
        self.assertTrue(report["healthy"])
        by_name = {p["name"]: p for p in report["projections"]}
        self.assertEqual(
            {
                k: by_name["WorldSummary"][k]
                for k in ("position", "head", "lag", "worker")
            },
            {"position": 2, "head": 3, "lag": 1, "worker": "none"},
        )
        self.assertEqual(report["applications"][0]["head"], 3)

    def test_a_lag_over_the_bound_fails(self) -> None:
        with self.assertRaisesMessage(
            CommandError, "projection 'Counters' lags 3 events (max 2)"
        ) as caught:
            run_status("--max-lag", "2")
        self.assertEqual(caught.exception.returncode, 1)

    def test_a_dead_worker_fails(self) -> None:
        self.register_worker(heartbeat_at=timezone.now() - timedelta(minutes=5))
        out = StringIO()
        with self.assertRaisesMessage(CommandError, "is dead"):
            call_command("eventsourcing_status", "--json", stdout=out)
        report = json.loads(out.getvalue())
        self.assertFalse(report["healthy"])
        by_name = {p["name"]: p for p in report["projections"]}
        self.assertEqual(by_name["WorldSummary"]["worker"], "dead")
