"""A process of test_dcb_race: joins its students to courses, racing others.

Run as ``python -m tests.dcb_racer GO_PREFIX COURSE_ID:STUDENT_ID,... ...`` from
the project root, with the environment of the test run (it uses the run's test
databases): one argument per race. It prints "ready" when it is connected; for
each race it waits for the file GO_PREFIX<n>, reads every enrolment, decides and
saves each (reading again after a lost race), and prints one JSON line of
counts.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings_test")
os.environ["ESDJ_USE_TEST_DATABASES"] = "1"
django.setup()

from eventsourcing.persistence import IntegrityError  # noqa: E402

from tests.testapp.courses import (  # noqa: E402
    CourseFullError,
    Courses,
    Enrolment,
)


def race(app: Courses, course_id: str, student_ids: list[str]) -> dict[str, int]:
    counts = {"joined": 0, "full": 0, "conflicts": 0}
    for student_id in student_ids:
        while True:
            enrolment = app.repository.get_group(Enrolment, student_id, course_id)
            try:
                enrolment.join()
            except CourseFullError:
                counts["full"] += 1
                break
            # Let the others decide on the same state.
            time.sleep(0.002)
            try:
                app.repository.save(enrolment)
            except IntegrityError:
                counts["conflicts"] += 1
                continue
            counts["joined"] += 1
            break
    return counts


def main(go_prefix: str, races: list[str]) -> None:
    app = Courses()
    # Connected and warmed up before the first start.
    app.recorder.read(limit=1)
    print("ready", flush=True)
    for n, spec in enumerate(races):
        course_id, students = spec.split(":", 1)
        while not Path(f"{go_prefix}{n}").exists():
            time.sleep(0.001)
        counts = race(app, course_id, students.split(","))
        print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
