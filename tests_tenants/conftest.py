"""Three tenants plus public, created once with django-tenants for the module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from eventsourcing_django.dialects import dialect_for
from eventsourcing_django.tenants import forget_applications

TENANTS = ("tenant_a", "tenant_b", "tenant_c")


def host(schema: str) -> str:
    """The tenant's domain (host names have no underscores)."""
    return f"{schema.replace('_', '-')}.example.com"


@pytest.fixture(scope="session")
def tenants(django_db_setup: Any, django_db_blocker: Any) -> Iterator[list[str]]:
    from tests_tenants.customers.models import Client, Domain

    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        for schema in TENANTS:
            client = Client.objects.create(schema_name=schema, name=schema)
            Domain.objects.create(domain=host(schema), tenant=client)
        Domain.objects.create(
            domain="public.example.com",
            tenant=Client.objects.create(schema_name="public", name="public"),
        )
    yield list(TENANTS)


@pytest.fixture(autouse=True)
def db(tenants: list[str], django_db_blocker: Any) -> Iterator[None]:
    """Database access for the test; afterwards every schema's event tables are
    emptied and the cached applications forgotten."""
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        yield
        forget_applications()
        connection.set_schema_to_public()
        for schema in ["public", *tenants]:
            dialect = dialect_for(connection, schema=schema)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]
                )
                if cursor.fetchone() is None:
                    continue
                for kind, table in dialect.marked_tables(cursor):
                    for statement, params in dialect.reset_statements(kind, table):
                        cursor.execute(statement, params)
                cursor.execute(
                    f"DELETE FROM {connection.ops.quote_name(schema)}.shop_worldsummary"
                )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures of the all-tenants worker test (test_all_tenants.py)."""
    import sys

    module = sys.modules.get("tests_tenants.test_all_tenants")
    figures: list[str] = getattr(module, "FIGURES", [])
    if figures:
        terminalreporter.write_sep("-", "all-tenants worker")
        for line in figures:
            terminalreporter.write_line(line)
