"""How the projection commands show their progress in catching up.

On a terminal, one bar per projection (drawn by tqdm), each on its own line and
redrawn in place, whichever thread catches it up; log lines printed meanwhile go
above the bars. Otherwise (a pipe, a file, a service manager's journal), one log
line per interval on the logger ``eventsourcing_django.projections``. Either way
the last word is the truth: "caught up to 4000 of 4000", or "stopped at 1800 of
4000" when a signal or an error stopped it first.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

logger = logging.getLogger("eventsourcing_django.projections")


class Progress(Protocol):
    """Told each position while catching up, then :meth:`finish` once."""

    def __call__(self, position: int, end: int) -> None: ...

    def finish(self) -> None:
        """Say where catching up ended: at the end, or stopped before it."""


class ProgressLog:
    """Logs catching up every ``every`` seconds, and where it ended."""

    def __init__(self, name: str, every: float = 5.0) -> None:
        self.name = name
        self.every = every
        self.last_logged = time.monotonic()
        self.position: int | None = None
        self.end = 0

    def __call__(self, position: int, end: int) -> None:
        self.position, self.end = position, end
        now = time.monotonic()
        if position < end and now - self.last_logged >= self.every:
            self.last_logged = now
            logger.info("%s: caught up to %d of %d", self.name, position, end)

    def finish(self) -> None:
        if self.position is None:
            return  # stopped before it knew where it was
        if self.position < self.end:
            logger.info("%s: stopped at %d of %d", self.name, self.position, self.end)
        else:
            logger.info("%s: caught up to %d of %d", self.name, self.end, self.end)


class ProgressBars:
    """The bars of the projections that one command catches up, on a terminal.

    A bar is opened on its projection's first position, on the next free line,
    and finished in place. tqdm's ``close()`` draws a bar's last state on the
    cursor's line and moves below it, which is right only for the first line:
    so bars are closed together, top down, once every projection has finished
    (or when the command ends), leaving the cursor below them all.
    """

    def __init__(self, stream: Any, expected: int) -> None:
        self.stream = stream
        self.expected = expected
        self._lock = threading.Lock()
        self._bars: list[tqdm[Any]] = []
        self._finished = 0

    def bar(self, name: str) -> ProgressBar:
        return ProgressBar(self, name)

    def _open(self, name: str, position: int, end: int) -> tqdm[Any]:
        with self._lock:
            bar: tqdm[Any] = tqdm(
                desc=name,
                total=end,
                initial=position,
                unit=" events",
                file=self.stream,
                position=len(self._bars),
                leave=True,
                dynamic_ncols=True,
            )
            self._bars.append(bar)
            return bar

    def _finish(self) -> None:
        with self._lock:
            self._finished += 1
            if self._finished >= self.expected:
                self._close_all()

    def close(self) -> None:
        with self._lock:
            self._close_all()

    def _close_all(self) -> None:
        # One lock for all: no bar redraws (nor log line) between two closes.
        # (get_lock has no annotations in types-tqdm.)
        with tqdm.get_lock():  # type: ignore[no-untyped-call]
            for bar in self._bars:
                bar.close()
        self._bars.clear()


class ProgressBar:
    """One projection's bar in :class:`ProgressBars`."""

    def __init__(self, bars: ProgressBars, name: str) -> None:
        self.bars = bars
        self.name = name
        self.bar: tqdm[Any] | None = None

    def __call__(self, position: int, end: int) -> None:
        if self.bar is None:
            self.bar = self.bars._open(self.name, position, end)
            return
        if end != self.bar.total:
            self.bar.total = end
        # Positions are notification IDs: a topic filter makes them jump.
        self.bar.update(position - self.bar.n)

    def finish(self) -> None:
        bar = self.bar
        if bar is not None:
            if bar.total is not None and bar.n < bar.total:
                bar.set_postfix_str("stopped", refresh=False)
            bar.refresh()  # the last state, though updates came too fast to draw
        self.bars._finish()


@contextlib.contextmanager
def catch_up_progress(
    stdout: Any, names: Sequence[str], every: float = 5.0
) -> Iterator[Callable[[str], Progress]]:
    """Progress for each of ``names``: bars if ``stdout`` is a terminal, else logs.

    ``stdout`` is a command's ``self.stdout``; its bars are drawn on the stream
    under it, since Django's wrapper ends every write with a newline.
    """
    if not stdout.isatty():
        yield lambda name: ProgressLog(name, every)
        return
    bars = ProgressBars(getattr(stdout, "_out", stdout), expected=len(names))
    # Log lines to the console go through tqdm, above the bars, not across them.
    # Only loggers that print there: tqdm adds its handler to each one given.
    loggers = [
        each
        for each in (logger, logging.getLogger())
        if any(_prints_to_console(h) for h in each.handlers)
    ]
    try:
        with logging_redirect_tqdm(loggers=loggers):
            yield bars.bar
    finally:
        bars.close()


def _prints_to_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and handler.stream in (
        sys.stdout,
        sys.stderr,
    )


def configure_logging(verbosity: int) -> None:
    """Log our messages to stderr, as verbose as asked, unless the project says."""
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))
