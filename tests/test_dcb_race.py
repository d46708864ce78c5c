"""Four processes race to fill a course of ten places (the README's DCB example):
exactly ten students join, every time; every lost race is the library's
IntegrityError, and the loser, reading again, finds the course full or joins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from eventsourcing.dcb.api import DCBQuery, DCBQueryItem

from tests.base import DjangoDBTestCase
from tests.testapp.courses import Course, Courses

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 4
STUDENTS = 40
PLACES = 10
REPEATS = 3


class TestRaceForPlaces(DjangoDBTestCase):
    def test_exactly_ten_of_forty_students_join(self) -> None:
        app = Courses()
        conflicts = 0
        for repeat in range(REPEATS):
            course_id = app.register_course(f"Course {repeat}", places=PLACES)
            students = [
                app.register_student(f"Student {i}", max_courses=REPEATS)
                for i in range(STUDENTS)
            ]
            counts = self.race(course_id, students)
            self.assertEqual(sum(c["joined"] for c in counts), PLACES, counts)
            self.assertEqual(sum(c["full"] for c in counts), STUDENTS - PLACES)
            conflicts += sum(c["conflicts"] for c in counts)
            course = app.repository.get(course_id)
            assert isinstance(course, Course)
            self.assertEqual(len(set(course.student_ids)), PLACES)
        # The processes did race: some decisions lost to others.
        self.assertGreater(conflicts, 0)
        # Positions are contiguous: 1 + 40 + 10 events per repeat.
        events = list(app.recorder.read())
        self.assertEqual(
            [e.position for e in events],
            list(range(1, 1 + REPEATS * (1 + STUDENTS + PLACES))),
        )
        joined = app.recorder.read(
            DCBQuery([DCBQueryItem(types=[events[-1].event.type])])
        )
        self.assertEqual(len(list(joined)), REPEATS * PLACES)

    def race(self, course_id: str, students: list[str]) -> list[dict[str, int]]:
        with tempfile.TemporaryDirectory() as directory:
            go = Path(directory) / "go"
            share = STUDENTS // PROCESSES
            processes = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.dcb_racer",
                        str(go),
                        course_id,
                        *students[n * share : (n + 1) * share],
                    ],
                    cwd=ROOT,
                    env=os.environ.copy(),
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for n in range(PROCESSES)
            ]
            try:
                # Each has set Django up and connected: all start at once.
                for p in processes:
                    assert p.stdout is not None
                    self.assertEqual(p.stdout.readline().strip(), "ready")
                go.touch()
                outputs = [p.communicate(timeout=120)[0] for p in processes]
            finally:
                for p in processes:
                    p.kill()
                    p.wait()
        for p in processes:
            self.assertEqual(p.returncode, 0)
        return [json.loads(out.strip().splitlines()[-1]) for out in outputs]
