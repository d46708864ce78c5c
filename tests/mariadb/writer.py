"""A writer process of test_follow_the_log: commits batches into one application.

Run as ``python -m tests.mariadb.writer NAME TRANSACTIONS SEED`` from the project
root, with the environment of the test run (it uses the run's test databases).
"""

from __future__ import annotations

import os
import random
import sys
from uuid import uuid4

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings_test")
os.environ["ESDJ_USE_TEST_DATABASES"] = "1"
django.setup()

from eventsourcing.persistence import StoredEvent  # noqa: E402

from eventsourcing_django.recorders import DjangoApplicationRecorder  # noqa: E402


def main(name: str, transactions: int, seed: int) -> None:
    recorder = DjangoApplicationRecorder(name, lock_timeout=30)
    rng = random.Random(seed)
    for _ in range(transactions):
        originator_id = uuid4()
        batch = [
            StoredEvent(originator_id, version, "topic", b"state")
            for version in range(1, rng.randint(1, 5) + 1)
        ]
        recorder.insert_events(batch)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
