"""Django settings for the test suite.

``ESDJ_DATABASE`` picks the database: ``sqlite`` (a file, the default) or
``postgres`` (127.0.0.1:5432, user postgres; ``ESDJ_PG_DRIVER=psycopg2`` uses
psycopg2 instead of psycopg 3). ``ESDJ_TEST_SUFFIX`` keeps the test databases of
runs that go at once apart.
"""

import os
import sys
import tempfile
from pathlib import Path

DATABASE = os.environ.get("ESDJ_DATABASE", "sqlite")
PG_DRIVER = os.environ.get("ESDJ_PG_DRIVER", "psycopg")
SUFFIX = os.environ.get("ESDJ_TEST_SUFFIX", "")

if DATABASE == "postgres" and PG_DRIVER == "psycopg2":
    # Django prefers psycopg 3 when both drivers are installed; hide it.
    sys.modules["psycopg"] = None  # type: ignore[assignment]

SECRET_KEY = "eventsourcing-django-tests"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "eventsourcing_django",
    "tests.testapp",
    # Holds the migrations that the tests of operations and commands write.
    "tests.routedapp",
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _postgres(name: str) -> dict[str, object]:
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": os.environ.get("ESDJ_PG_USER", "postgres"),
        "PASSWORD": os.environ.get("ESDJ_PG_PASSWORD", ""),
        "HOST": os.environ.get("ESDJ_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("ESDJ_PG_PORT", "5432"),
        "TEST": {"NAME": f"test_esdj_{name}{SUFFIX}"},
    }


def _sqlite(name: str) -> dict[str, object]:
    directory = Path(tempfile.gettempdir()) / f"esdj{SUFFIX}"
    directory.mkdir(exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(directory / f"{name}.sqlite3"),
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
        # A file, not the in-memory database Django uses for tests by default:
        # the recorders' threads each open their own connection.
        "TEST": {"NAME": str(directory / f"test_{name}.sqlite3")},
    }


_make = _postgres if DATABASE == "postgres" else _sqlite
DATABASES = {"default": _make("default"), "other": _make("other")}
