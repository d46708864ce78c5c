"""The README's example runs verbatim, and stays the example we started from."""

from __future__ import annotations

import hashlib
import re
import sys
import types
from pathlib import Path

from django.db import connections

from tests.base import DjangoDBTestCase

README = Path(__file__).resolve().parent.parent / "README.md"

# The SHA-256 of the example's code blocks as first published: the example must
# keep running exactly as written, so its code is not to be edited.
SEED_EXAMPLE_SHA256 = "e54d15491960ca2b6a5b23b13e1d08433e46dd476ac7b277d884fcf23b1912a6"


def example_blocks() -> list[str]:
    section = README.read_text().split("<!-- seed-example:start -->")[1]
    section = section.split("<!-- seed-example:end -->")[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_example_code_is_the_seed_example_unchanged() -> None:
    blocks = example_blocks()
    assert len(blocks) == 6
    digest = hashlib.sha256("".join(blocks).encode()).hexdigest()
    assert digest == SEED_EXAMPLE_SHA256


class TestReadmeExample(DjangoDBTestCase):
    def test_the_example_runs_verbatim(self) -> None:
        module = types.ModuleType("readme_example")
        sys.modules[module.__name__] = module
        try:
            for block in example_blocks():
                exec(compile(block, str(README), "exec"), module.__dict__)
        finally:
            del sys.modules[module.__name__]
        namespace = module.__dict__
        self.assertEqual(
            namespace["history"], ["dinosaurs", "trucks", "internet", "covid"]
        )
        connection = connections["default"]
        with connection.cursor() as cursor:
            tables = set(connection.introspection.table_names(cursor))
            cursor.execute("SELECT count(*) FROM universe_events")
            (events,) = cursor.fetchone()  # type: ignore[misc]
            cursor.execute("SELECT count(*) FROM universe_snapshots")
            (snapshots,) = cursor.fetchone()  # type: ignore[misc]
        self.assertTrue({"universe_events", "universe_snapshots"} <= tables)
        self.assertEqual((events, snapshots), (5, 1))


def project_example_files() -> dict[str, str]:
    """The files of the README's "Declaring applications" example, by path."""
    text = README.read_text()
    found = re.findall(
        r"<!-- project-example: (\S+) -->\n```python\n(.*?)```", text, re.S
    )
    return dict(found)


class TestReadmeProjectExample(DjangoDBTestCase):
    """The declared application and its views, served as the README shows them."""

    def setUp(self) -> None:
        from eventsourcing_django.applications import close_applications

        files = project_example_files()
        self.assertEqual(
            sorted(files),
            ["myproject/settings.py", "myproject/urls.py", "myproject/views.py"],
        )
        # myproject.domain holds the World and Universe of the seed example.
        domain = "".join(example_blocks()[:2])
        modules = {"myproject": "", "myproject.domain": domain}
        modules.update(
            {path[:-3].replace("/", "."): code for path, code in files.items()}
        )
        self.addCleanup(close_applications)
        for name in modules:
            self.addCleanup(sys.modules.pop, name, None)
        package = types.ModuleType("myproject")
        package.__path__ = []
        sys.modules["myproject"] = package
        for name in (
            "myproject.domain",
            "myproject.settings",
            "myproject.views",
            "myproject.urls",
        ):
            module = types.ModuleType(name)
            sys.modules[name] = module
            setattr(package, name.rpartition(".")[2], module)
            exec(compile(modules[name], f"README.md ({name})", "exec"), module.__dict__)
        self.declared = sys.modules["myproject.settings"].EVENTSOURCING_APPLICATIONS
        close_applications()

    def test_the_views_serve_the_declared_application(self) -> None:
        from django.test import Client

        from eventsourcing_django.applications import get_application

        with self.settings(
            EVENTSOURCING_APPLICATIONS=self.declared, ROOT_URLCONF="myproject.urls"
        ):
            client = Client()
            response = client.post("/worlds/")
            self.assertEqual(response.status_code, 201)
            world = f"/worlds/{response.json()['world_id']}/"
            for what in ("dinosaurs", "trucks"):
                response = client.post(world + "make-it-so/", {"what": what})
                self.assertEqual(response.json(), {"ok": True})
            self.assertEqual(client.post(world).status_code, 405)
            response = client.get(world)
            self.assertEqual(response.json(), {"history": ["dinosaurs", "trucks"]})
            # The instance the views used was built from the declaration.
            universe = get_application("Universe")
            self.assertIsNotNone(universe.mapper.compressor)
