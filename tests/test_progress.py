"""Progress of catching up: bars redrawn in place on a terminal (a real worker
on a pseudo-terminal, read through a terminal emulator), log lines otherwise,
and the truth when stopped early."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
from io import StringIO

import pyte
import pytest
from django.core.management import call_command
from django.test import SimpleTestCase

from eventsourcing_django.progress import ProgressBars, ProgressLog
from tests.base import DjangoDBTestCase
from tests.test_projections_django import (
    ENV,
    ROOT,
    loaded,
    position,
    save_worlds,
    start_worker,
    wait_until,
    write_worlds,
)
from tests.testapp.domain import Universe

COLUMNS, LINES = 120, 40


def run_on_a_terminal(*args: str) -> tuple[int, bytes]:
    """Run a manage.py command with a pseudo-terminal as its stdout and stderr."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    env = {
        **os.environ,
        "ESDJ_USE_TEST_DATABASES": "1",
        "PYTHONPATH": str(ROOT),
        # A redraw per event, however fast: enough redraws to count newlines
        # against, without depending on how fast this machine is. (The bar
        # moves once per page of events: pages of one event here.)
        "TQDM_MININTERVAL": "0",
        "ESDJ_PROJECTION_BATCH_SIZE": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "django", *args, "--settings=settings_test"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    output = bytearray()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 120)
            if not ready:
                process.kill()
                msg = f"no output for 120 s; so far: {bytes(output[-2000:])!r}"
                raise TimeoutError(msg)
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not data:
                break
            output += data
    finally:
        os.close(master)
        returncode = process.wait(timeout=60)
    return returncode, bytes(output)


def screen_of(output: bytes) -> list[str]:
    """The lines a terminal shows after receiving ``output``."""
    screen = pyte.Screen(COLUMNS, LINES)
    pyte.ByteStream(screen).feed(output)
    return [line.rstrip() for line in screen.display if line.strip()]


def bar_lines(screen: list[str], name: str) -> list[str]:
    return [line for line in screen if line.startswith(f"{name}:") and "|" in line]


class TestProgressOnATerminal(DjangoDBTestCase):
    def assert_redrawn_in_place(self, output: bytes) -> None:
        # The terminal turns each newline into CR LF: a CR alone is a redraw.
        newlines = output.count(b"\n")
        redraws = output.count(b"\r") - output.count(b"\r\n")
        self.assertGreater(redraws, 100, output[-2000:])
        self.assertLess(newlines * 10, redraws, output[-2000:])

    def test_the_worker_draws_its_bar_on_one_line_redrawn_in_place(self) -> None:
        write_worlds(Universe(env=ENV), worlds=30, things_each=9)  # 300 events
        returncode, output = run_on_a_terminal(
            "run_projections", "WorldSummary", "--catch-up-only"
        )
        self.assertEqual(returncode, 0, output[-2000:])
        screen = screen_of(output)
        bars = bar_lines(screen, "WorldSummary")
        self.assertEqual(len(bars), 1, screen)
        self.assertIn("300/300", bars[0])
        self.assertNotIn("stopped", bars[0])
        # Log lines are printed once each, above the bar or below it.
        processed = "WorldSummary: processed 300 events while catching up"
        self.assertEqual(len([s for s in screen if s.endswith(processed)]), 1, screen)
        self.assertEqual(screen[-1], "Stopped.", screen)
        self.assert_redrawn_in_place(output)

    def test_each_projection_gets_a_line_of_its_own(self) -> None:
        write_worlds(Universe(env=ENV), worlds=20, things_each=4)  # 100 events
        returncode, output = run_on_a_terminal(
            "run_projections", "WorldSummary", "Counters", "--catch-up-only"
        )
        self.assertEqual(returncode, 0, output[-2000:])
        screen = screen_of(output)
        # Each projection's thread draws on its own line, to the end, once.
        # (tqdm reaches the lines below the first one with newlines, so they
        # are not counted here.)
        for name in ("WorldSummary", "Counters"):
            bars = bar_lines(screen, name)
            self.assertEqual(len(bars), 1, screen)
            self.assertIn("100/100", bars[0])
        self.assertEqual(screen[-1], "Stopped.", screen)

    def test_rebuild_draws_its_bar_the_same_way(self) -> None:
        write_worlds(Universe(env=ENV), worlds=30, things_each=9)  # 300 events
        call_command("run_projections", "WorldSummary", "--catch-up-only", verbosity=0)
        returncode, output = run_on_a_terminal("rebuild_projection", "WorldSummary")
        self.assertEqual(returncode, 0, output[-2000:])
        screen = screen_of(output)
        bars = bar_lines(screen, "WorldSummary")
        self.assertEqual(len(bars), 1, screen)
        self.assertIn("300/300", bars[0])
        self.assertEqual(screen[-1], "Rebuilt WorldSummary: 300 events replayed.")
        self.assert_redrawn_in_place(output)


class TestBarsStoppedEarly(SimpleTestCase):
    def test_a_bar_stopped_early_stays_where_it_stopped_marked_so(self) -> None:
        stream = StringIO()
        bars = ProgressBars(stream, expected=2)
        first, second = bars.bar("WorldSummary"), bars.bar("Counters")
        first(0, 4000)
        second(0, 4000)
        first(1800, 4000)
        second(4000, 4000)
        first.finish()
        second.finish()  # the last: both are closed, top down
        screen = screen_of(stream.getvalue().encode())
        self.assertEqual(len(bar_lines(screen, "WorldSummary")), 1, screen)
        self.assertIn("1800/4000", bar_lines(screen, "WorldSummary")[0])
        self.assertIn("stopped", bar_lines(screen, "WorldSummary")[0])
        self.assertIn("4000/4000", bar_lines(screen, "Counters")[0])
        self.assertNotIn("stopped", bar_lines(screen, "Counters")[0])
        self.assertEqual(len(screen), 2, screen)


class TestProgressInLogs(DjangoDBTestCase):
    def test_the_worker_logs_its_progress_when_no_terminal_is_attached(self) -> None:
        write_worlds(Universe(env=ENV), worlds=2, things_each=1)
        with self.assertLogs("eventsourcing_django.projections", "INFO") as logs:
            call_command("run_projections", "WorldSummary", "--catch-up-only")
        messages = [r.getMessage() for r in logs.records]
        self.assertIn("WorldSummary: catching up from 0", messages)
        self.assertIn("WorldSummary: caught up to 4 of 4", messages)
        self.assertIn("WorldSummary: processed 4 events while catching up", messages)

    def test_rebuild_logs_its_progress_when_no_terminal_is_attached(self) -> None:
        write_worlds(Universe(env=ENV), worlds=2, things_each=1)
        with self.assertLogs("eventsourcing_django.projections", "INFO") as logs:
            call_command("rebuild_projection", "WorldSummary", stdout=StringIO())
        messages = [r.getMessage() for r in logs.records]
        self.assertIn("WorldSummary: caught up to 4 of 4", messages)

    def test_one_line_per_interval_and_the_end(self) -> None:
        log = ProgressLog("WorldSummary", every=0.0)
        with self.assertLogs("eventsourcing_django.projections", "INFO") as logs:
            log(0, 200)
            log(50, 200)
            log(200, 200)
            log.finish()
        self.assertEqual(
            [r.getMessage() for r in logs.records],
            [
                "WorldSummary: caught up to 0 of 200",
                "WorldSummary: caught up to 50 of 200",
                "WorldSummary: caught up to 200 of 200",
            ],
        )

    def test_stopped_half_way_it_says_where(self) -> None:
        write_worlds(Universe(env=ENV), worlds=10, things_each=3)  # 40 events
        stop = threading.Event()

        class StopAtTwelve(ProgressLog):
            def __call__(self, position: int, end: int) -> None:
                super().__call__(position, end)
                if position >= 12:
                    stop.set()  # as SIGTERM's handler does

        projection = loaded()
        try:
            progress = StopAtTwelve("WorldSummary", every=3600)
            with self.assertLogs("eventsourcing_django.projections", "INFO") as logs:
                # Pages of one event: it is told of (and stops after) each.
                count = projection.catch_up(stop=stop, progress=progress, page_size=1)
                progress.finish()
        finally:
            projection.close()
        self.assertEqual(count, 12)
        self.assertEqual(
            [r.getMessage() for r in logs.records],
            ["WorldSummary: stopped at 12 of 40"],
        )
        self.assertEqual(position(), 12)


class TestStoppingTheWorker(DjangoDBTestCase):
    @pytest.mark.crash
    def test_sigterm_while_catching_up_logs_where_it_stopped(self) -> None:
        save_worlds(Universe(env=ENV), worlds=100, things_each=29)  # 3,000 events
        # Small pages: it is still catching up when told to stop.
        worker = start_worker("--catch-up-only", batch_size=10)
        try:
            wait_until(lambda: position() >= 100)
        finally:
            worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=60)
        self.assertEqual(worker.returncode, 0, err)
        stopped = re.search(r"WorldSummary: stopped at (\d+) of 3000", err)
        self.assertIsNotNone(stopped, err)
        assert stopped is not None
        at = int(stopped.group(1))
        self.assertLess(at, 3000, "stopped too late to test stopping early")
        # The truth: where its tracking is, and nothing about having caught up.
        self.assertEqual(at, position())
        self.assertNotIn("caught up to 3000", err)
        self.assertIn("Stopped.", out)
