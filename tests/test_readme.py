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
