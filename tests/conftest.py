"""What this database collects: some tests are about one vendor only."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from tests.base import POSTGRES_ONLY, is_postgres

# Tests of PostgreSQL-only behaviour are collected only when the suite runs on
# PostgreSQL (ESDJ_DATABASE=postgres); the CI runs it on every database and driver.
collect_ignore_glob = []
# Likewise tests/mariadb/ on MariaDB only (ESDJ_DATABASE=mariadb).
if os.environ.get("ESDJ_DATABASE") != "mariadb":
    collect_ignore_glob.append("mariadb/*")
if os.environ.get("ESDJ_DATABASE") != "postgres":
    collect_ignore_glob.append("postgres/*")
elif os.environ.get("ESDJ_PG_DRIVER") == "psycopg2":
    # eventsourcing.postgres itself runs on psycopg 3 only.
    collect_ignore_glob.append("postgres/test_native_sharing.py")


def pytest_sessionfinish() -> None:
    """Remove this run's SQLite test files (the databases themselves are
    destroyed by Django; SQLite leaves its -wal and -shm files behind)."""
    import shutil
    import tempfile
    from pathlib import Path

    suffix = os.environ.get("ESDJ_TEST_SUFFIX", "")
    if suffix:
        shutil.rmtree(Path(tempfile.gettempdir()) / f"esdj{suffix}", ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    if is_postgres():
        return "eventsourcing_django: collecting the PostgreSQL-only classes too"
    return (
        "eventsourcing_django: PostgreSQL-only tests (tests/postgres/, and the "
        f"schema test classes) are not collected: {POSTGRES_ONLY}"
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures of the restart tests (tests/postgres/test_restarts.py)."""
    cluster = sys.modules.get("tests.postgres.cluster")
    figures: list[str] = getattr(cluster, "FIGURES", [])
    if figures:
        terminalreporter.write_sep("-", "database restarts")
        for line in figures:
            terminalreporter.write_line(line)
