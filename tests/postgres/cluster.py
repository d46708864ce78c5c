"""A PostgreSQL server of a test's own, to restart and crash at will.

Made with ``initdb`` in a temporary folder and started on a free port; never the
shared server the rest of the suite uses. As root, the server's commands run as
the ``postgres`` OS user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

#: Figures of the restart tests, printed at the end of the run (conftest.py).
FIGURES: list[str] = []


def _bin_dir() -> Path:
    """Where initdb and pg_ctl are: ESDJ_PG_BIN, the PATH, or Debian's layout."""
    if os.environ.get("ESDJ_PG_BIN"):
        return Path(os.environ["ESDJ_PG_BIN"])
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if candidates:
        return Path(candidates[-1]).parent
    msg = (
        "The restart tests need PostgreSQL's initdb and pg_ctl: install the "
        "server package, or set ESDJ_PG_BIN to the folder that holds them"
    )
    raise RuntimeError(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TemporaryCluster:
    """initdb, start, restart (fast or crash), remove."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.port = _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="esdj_pg_"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.directory, user="postgres")
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as_postgres, str(self.bin / program), *args]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            msg = f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}"
            raise RuntimeError(msg)

    def start(self) -> float:
        """Start the server; return the time (time.time()) it accepted connections."""
        # fsync off: a crash here kills processes, not the machine, so what
        # the server wrote is still in the OS's cache when it restarts.
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.directory} -c fsync=off "
            "-c max_connections=50"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30",
            "-o", options, "start",
        )  # fmt: skip
        return time.time()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (a clean restart) or ``immediate`` (a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):  # Not running.
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def query(self, sql: str) -> list[list[str]]:
        """Rows of ``sql``, through psql (whatever driver the suite runs on)."""
        result = subprocess.run(
            [
                str(self.bin / "psql"), "-X", "-A", "-t", "-F", "\t",
                "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql,
            ],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return [line.split("\t") for line in result.stdout.splitlines() if line]

    def environ(self) -> dict[str, str]:
        """Environment for a process whose settings_test reaches this server."""
        env = {k: v for k, v in os.environ.items() if k != "ESDJ_USE_TEST_DATABASES"}
        env.update(
            ESDJ_DATABASE="postgres",
            ESDJ_PG_HOST="127.0.0.1",
            ESDJ_PG_PORT=str(self.port),
            DJANGO_SETTINGS_MODULE="settings_test",
        )
        return env
