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
RACES = 3


class TestRaceForPlaces(DjangoDBTestCase):
    def test_exactly_ten_of_forty_students_join_every_time(self) -> None:
        app = Courses()
        races = []
        for n in range(RACES):
            course_id = app.register_course(f"Course {n}", places=PLACES)
            students = [
                app.register_student(f"Student {i}", max_courses=RACES)
                for i in range(STUDENTS)
            ]
            races.append((course_id, students))
        results = self.race(races)
        conflicts = 0
        for (course_id, _), counts in zip(races, results, strict=True):
            self.assertEqual(sum(c["joined"] for c in counts), PLACES, counts)
            self.assertEqual(sum(c["full"] for c in counts), STUDENTS - PLACES)
            conflicts += sum(c["conflicts"] for c in counts)
            course = app.repository.get(course_id)
            assert isinstance(course, Course)
            self.assertEqual(len(set(course.student_ids)), PLACES)
        # The processes did race: some decisions lost to others.
        self.assertGreater(conflicts, 0)
        # Positions are contiguous: a course and 40 students per race, then
        # 10 students joined in each.
        events = list(app.recorder.read())
        total = RACES * (1 + STUDENTS + PLACES)
        self.assertEqual([e.position for e in events], list(range(1, total + 1)))
        joined = DCBQuery([DCBQueryItem(types=[events[-1].event.type])])
        self.assertEqual(len(list(app.recorder.read(joined))), RACES * PLACES)

    def race(self, races: list[tuple[str, list[str]]]) -> list[list[dict[str, int]]]:
        """Run the races in four processes; each one's counts, per race."""
        share = STUDENTS // PROCESSES
        with tempfile.TemporaryDirectory() as directory:
            go = str(Path(directory) / "go")
            processes = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.dcb_racer",
                        go,
                        *(
                            f"{course}:"
                            + ",".join(students[n * share : (n + 1) * share])
                            for course, students in races
                        ),
                    ],
                    cwd=ROOT,
                    env=os.environ.copy(),
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for n in range(PROCESSES)
            ]
            try:
                results = []
                # Each has set Django up and connected: all start at once.
                for p in processes:
                    assert p.stdout is not None
                    self.assertEqual(p.stdout.readline().strip(), "ready")
                for n in range(len(races)):
                    Path(f"{go}{n}").touch()
                    results.append(
                        [json.loads(p.stdout.readline()) for p in processes]  # type: ignore[union-attr]
                    )
                for p in processes:
                    self.assertEqual(p.wait(timeout=60), 0)
            finally:
                for p in processes:
                    p.kill()
                    p.wait()
        return results
