"""A process of test_dcb_race: joins its students to one course, racing others.

Run as ``python -m tests.dcb_racer GO_FILE COURSE_ID STUDENT_ID...`` from the
project root, with the environment of the test run (it uses the run's test
databases). It reads every enrolment first, waits for GO_FILE, then decides and
saves each, reading again after a lost race. It prints "ready" when it is
connected, then one JSON line of counts.
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


def main(go_file: str, course_id: str, student_ids: list[str]) -> None:
    app = Courses()
    counts = {"joined": 0, "full": 0, "conflicts": 0}
    # Connected and warmed up before the start.
    app.repository.get(course_id)
    print("ready", flush=True)
    while not Path(go_file).exists():
        time.sleep(0.001)
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
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
