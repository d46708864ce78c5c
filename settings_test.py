"""Django settings for the test suite.

``ESDJ_DATABASE`` picks the database: ``sqlite`` (a file, the default),
``postgres`` (127.0.0.1:5432, user postgres; ``ESDJ_PG_DRIVER=psycopg2`` uses
psycopg2 instead of psycopg 3) or ``mariadb`` (127.0.0.1:3306, user root, no
password; ``ESDJ_MARIADB_HOST``, ``_PORT``, ``_USER``, ``_PASSWORD`` to change).
``ESDJ_TEST_SUFFIX`` (default: the process ID) keeps the test databases of runs
that go at once apart.
"""

import os
import sys
import tempfile
from pathlib import Path

DATABASE = os.environ.get("ESDJ_DATABASE", "sqlite")
PG_DRIVER = os.environ.get("ESDJ_PG_DRIVER", "psycopg")
# Test runs that go at once must not share test databases: by default each run
# has its own, and the processes it starts inherit the suffix.
SUFFIX = os.environ.setdefault("ESDJ_TEST_SUFFIX", f"_{os.getpid()}")

if DATABASE == "postgres" and PG_DRIVER == "psycopg2":
    # Django prefers psycopg 3 when both drivers are installed; hide it.
    sys.modules["psycopg"] = None  # type: ignore[assignment]

SECRET_KEY = "eventsourcing-django-tests"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "eventsourcing_django",
    "tests.testapp",
    # Holds the migrations that the tests of operations and commands write.
    "tests.routedapp",
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "tests.testapp.urls"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

STATIC_URL = "static/"
STATIC_ROOT = os.path.join(tempfile.gettempdir(), f"esdj{SUFFIX}_static")

# The applications of the README's examples, declared once.
EVENTSOURCING_APPLICATIONS = {
    "Universe": {"class": "tests.testapp.domain:Universe"},
    "WorldCounter": {"class": "tests.testapp.system:WorldCounter"},
}

# The projection example of the README (tests/testapp/projections.py).
EVENTSOURCING_PROJECTIONS = {
    "WorldSummary": {
        "application": "Universe",
        "projection": "tests.testapp.projections:WorldSummaryProjection",
        "view": "tests.testapp.projections:WorldSummaryView",
    },
    # An event-sourced projection: its state is an application of its own.
    "Counters": {
        "application": "Universe",
        "projection": "eventsourcing.tests.projection:Counters",
    },
}


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
        # Django's defaults otherwise (issue 16: our recorders switch the file to
        # WAL); a longer busy timeout for a machine loaded by parallel test runs.
        "OPTIONS": {"timeout": 20},
        # A file, not the in-memory database Django uses for tests by default:
        # the recorders' threads each open their own connection.
        "TEST": {"NAME": str(directory / f"test_{name}.sqlite3")},
    }


def _mariadb(name: str) -> dict[str, object]:
    return {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "test",
        "USER": os.environ.get("ESDJ_MARIADB_USER", "root"),
        "PASSWORD": os.environ.get("ESDJ_MARIADB_PASSWORD", ""),
        "HOST": os.environ.get("ESDJ_MARIADB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("ESDJ_MARIADB_PORT", "3306"),
        "OPTIONS": {"charset": "utf8mb4"},
        "TEST": {
            "NAME": f"test_esdj_{name}{SUFFIX}",
            "CHARSET": "utf8mb4",
            "COLLATION": "utf8mb4_unicode_ci",
        },
    }


_make = {"postgres": _postgres, "mariadb": _mariadb}.get(DATABASE, _sqlite)
DATABASES = {"default": _make("default"), "other": _make("other")}

if os.environ.get("ESDJ_USE_TEST_DATABASES"):
    # For processes that tests start (a projection worker): use the databases
    # that the test run created.
    for _settings in DATABASES.values():
        _settings["NAME"] = _settings["TEST"]["NAME"]  # type: ignore[index]

# Pages of events for projections: tests of progress and of kills mid-page start
# workers with a size of their own.
if "ESDJ_PROJECTION_BATCH_SIZE" in os.environ:
    EVENTSOURCING_PROJECTION_BATCH_SIZE = int(os.environ["ESDJ_PROJECTION_BATCH_SIZE"])
if "ESDJ_PROJECTION_BATCH_SECONDS" in os.environ:
    EVENTSOURCING_PROJECTION_BATCH_SECONDS = float(
        os.environ["ESDJ_PROJECTION_BATCH_SECONDS"]
    )
