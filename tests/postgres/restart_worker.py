"""Processes that the restart tests run against a server of their own.

    python -m tests.postgres.restart_worker writer OUT STOP
    python -m tests.postgres.restart_worker subscriber OUT STOP

Each writes one JSON line per outcome to OUT (flushed at once, so the test reads
what was acknowledged even if the process dies) and ends when the file STOP
exists. Both call the application from their main thread, as a script would.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings_test")
    import django

    django.setup()


def _emit(out: IO[str], **fields: Any) -> None:
    out.write(json.dumps({"t": time.time(), **fields}) + "\n")
    out.flush()


def writer(out: IO[str], stop: Path) -> None:
    """Save a new world with one thing in it, again and again (two events each)."""
    from eventsourcing.persistence import PersistenceError

    from tests.testapp.domain import Universe, World

    app = Universe(env={"PERSISTENCE_MODULE": "eventsourcing_django"})
    while not stop.exists():
        world = World()
        world.make_it_so("something")
        try:
            recordings = app.save(world)
        except PersistenceError as e:
            # Not acknowledged: it may or may not have been stored.
            _emit(out, failed=str(world.id), error=f"{type(e).__name__}: {e}")
            continue
        ids = [r.notification.id for r in recordings]
        _emit(out, acked=str(world.id), ids=ids)
        time.sleep(0.005)  # A steady load, not a flood.


def subscriber(out: IO[str], stop: Path) -> None:
    """Follow the writer's application, from the start, until told to stop."""
    from tests.testapp.domain import Universe

    app = Universe(env={"PERSISTENCE_MODULE": "eventsourcing_django"})
    with app.recorder.subscribe(gt=0) as subscription:

        def stop_when_told() -> None:
            while not stop.exists():
                time.sleep(0.05)
            subscription.stop()

        threading.Thread(target=stop_when_told, daemon=True).start()
        for notification in subscription:
            _emit(out, delivered=notification.id)


if __name__ == "__main__":
    role, out_path, stop_path = sys.argv[1:4]
    _setup()
    with open(out_path, "a") as out:
        {"writer": writer, "subscriber": subscriber}[role](out, Path(stop_path))
