"""MariaDB: a reader following the log never skips a notification.

AUTO_INCREMENT issues IDs when rows are inserted, and transactions commit in any
order; without the per-table lock, a reader could see ID 7 committed before ID 6
and move past 6 for good. Four processes write at once while the reader follows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from eventsourcing_django.recorders import DjangoApplicationRecorder
from tests.base import DjangoDBTestCase

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 4
TRANSACTIONS = 150


class TestFollowingTheLog(DjangoDBTestCase):
    def test_a_reader_never_sees_an_id_filled_in_below_it_later(self) -> None:
        recorder = DjangoApplicationRecorder("Log")
        recorder.create_table()
        writers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.mariadb.writer",
                    "Log",
                    str(TRANSACTIONS),
                    str(seed),
                ],
                cwd=ROOT,
                env=os.environ.copy(),
            )
            for seed in range(WRITERS)
        ]
        seen: list[int] = []
        reads_while_writing = 0
        try:
            while any(w.poll() is None for w in writers):
                seen += self.follow(recorder, seen)
                reads_while_writing += 1
                time.sleep(0.002)
        finally:
            for writer in writers:
                writer.wait(timeout=120)
        self.assertEqual([w.returncode for w in writers], [0] * WRITERS)
        seen += self.follow(recorder, seen)
        # The reader followed as the writers wrote, not only at the end.
        self.assertGreater(reads_while_writing, 10)
        self.assertGreater(len(seen), WRITERS * TRANSACTIONS)
        # Every ID from 1, once, in order: no gap was ever skipped.
        self.assertEqual(seen, list(range(1, len(seen) + 1)))
        self.assertEqual(recorder.max_notification_id(), len(seen))

    def follow(self, recorder: DjangoApplicationRecorder, seen: list[int]) -> list[int]:
        """The IDs after the last seen; each must follow the one before it, or
        the reader would have moved past an ID that commits later."""
        last = seen[-1] if seen else 0
        ids = [
            n.id
            for n in recorder.select_notifications(
                last, limit=1000, inclusive_of_start=False
            )
        ]
        self.assertEqual(ids, list(range(last + 1, last + 1 + len(ids))))
        return ids
