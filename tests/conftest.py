"""Says which test classes this database does not collect, and why."""

from __future__ import annotations

import pytest

from tests.base import POSTGRES_ONLY, is_postgres


def pytest_report_header(config: pytest.Config) -> str:
    if is_postgres():
        return "eventsourcing_django: collecting the PostgreSQL-only classes too"
    return (
        "eventsourcing_django: PostgreSQL-only test classes (schemas) are not "
        f"collected: {POSTGRES_ONLY}"
    )
