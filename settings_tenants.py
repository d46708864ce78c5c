"""Django settings for the schema-per-tenant tests (django-tenants, PostgreSQL).

Run with ``pytest --ds=settings_tenants tests_tenants``; ``ESDJ_PG_DRIVER`` and
``ESDJ_TEST_SUFFIX`` work as in settings_test.py.
"""

import os
import sys

PG_DRIVER = os.environ.get("ESDJ_PG_DRIVER", "psycopg")
SUFFIX = os.environ.setdefault("ESDJ_TEST_SUFFIX", f"_{os.getpid()}")
if PG_DRIVER == "psycopg2":
    sys.modules["psycopg"] = None  # type: ignore[assignment]

SECRET_KEY = "eventsourcing-django-tenant-tests"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {
    "default": {
        "ENGINE": "django_tenants.postgresql_backend",
        "NAME": "postgres",
        "USER": os.environ.get("ESDJ_PG_USER", "postgres"),
        "PASSWORD": os.environ.get("ESDJ_PG_PASSWORD", ""),
        "HOST": os.environ.get("ESDJ_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("ESDJ_PG_PORT", "5432"),
        "TEST": {"NAME": f"test_esdj_tenants{SUFFIX}"},
    }
}
# Ours first: django-tenants' router refuses every alias but the tenants'.
DATABASE_ROUTERS = [
    "eventsourcing_django.routers.EventSourcingRouter",
    "django_tenants.routers.TenantSyncRouter",
]

SHARED_APPS = [
    "django_tenants",
    "tests_tenants.customers",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    # The event store's admin pages, seen from a tenant's domain.
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "eventsourcing_django",
    # Also in public, so that public has tables of the same names as the
    # tenants': the tests show they are never touched by a tenant.
    "tests_tenants.shop",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "eventsourcing_django",
    "tests_tenants.shop",
]
INSTALLED_APPS = SHARED_APPS + [a for a in TENANT_APPS if a not in SHARED_APPS]
TENANT_MODEL = "customers.Client"
TENANT_DOMAIN_MODEL = "customers.Domain"

MIDDLEWARE = [
    "django_tenants.middleware.main.TenantMainMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
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
ROOT_URLCONF = "tests_tenants.shop.urls"
ALLOWED_HOSTS = ["*"]

# Declared once: every tenant's instance is built with this env.
EVENTSOURCING_APPLICATIONS = {
    "Universe": {
        "class": "tests.testapp.domain:Universe",
        "env": {"COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor"},
    },
}

EVENTSOURCING_PROJECTIONS = {
    "WorldSummary": {
        "application": "Universe",
        "projection": "tests_tenants.shop.projections:WorldSummaryProjection",
        "view": "tests_tenants.shop.projections:WorldSummaryView",
    },
}

if os.environ.get("ESDJ_USE_TEST_DATABASES"):
    # For processes that tests start (the all-tenants worker).
    DATABASES["default"]["NAME"] = DATABASES["default"]["TEST"]["NAME"]  # type: ignore[index]
if os.environ.get("ESDJ_PG_APPLICATION_NAME"):
    # To count a process's connections in pg_stat_activity.
    DATABASES["default"]["OPTIONS"] = {
        "application_name": os.environ["ESDJ_PG_APPLICATION_NAME"]
    }
if "ESDJ_PROJECTION_BATCH_SIZE" in os.environ:
    EVENTSOURCING_PROJECTION_BATCH_SIZE = int(os.environ["ESDJ_PROJECTION_BATCH_SIZE"])
