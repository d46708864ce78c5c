"""Run the README's example on SQLite and show what it stored.

    python example/run.py

Configures a small Django project (one SQLite file next to this script, made
afresh), runs ``migrate``, then executes the README's example code exactly as
written there, and prints the world's history and the tables it created.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import django
from django.conf import settings

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
DATABASE = HERE / "example.sqlite3"


def readme_example() -> list[str]:
    """The Python blocks of the README's example section, in order."""
    text = README.read_text()
    section = text.split("<!-- seed-example:start -->")[1].split(
        "<!-- seed-example:end -->"
    )[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def main() -> None:
    for path in HERE.glob("example.sqlite3*"):
        path.unlink()
    settings.configure(
        INSTALLED_APPS=["eventsourcing_django"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(DATABASE),
                "OPTIONS": {
                    "init_command": "PRAGMA journal_mode=WAL;",
                    "transaction_mode": "IMMEDIATE",
                },
            }
        },
        USE_TZ=True,
    )
    django.setup()

    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", "eventsourcing_django", verbosity=1)

    # Run the blocks in a module of their own, so the library can resolve the
    # topics of the classes they define ("__readme__:World").
    module = type(sys)("__readme__")
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    for block in readme_example():
        exec(compile(block, str(README), "exec"), namespace)

    print("\nHistory of the world:", namespace["history"])
    print(f"\nTables in {DATABASE.name}:")
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            if table.startswith("universe_"):
                # A name from introspection, quoted: not user input.
                quoted = connection.ops.quote_name(table)
                cursor.execute(f"SELECT count(*) FROM {quoted}")  # noqa: S608
                (count,) = cursor.fetchone()
                print(f"  {table:<22} {count} rows")


if __name__ == "__main__":
    main()
