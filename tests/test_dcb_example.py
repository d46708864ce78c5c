"""The README's DCB example (tests/testapp/courses.py): a DCBApplication with the
library's mapper and repository, on whichever database the suite runs."""

from __future__ import annotations

import re
from pathlib import Path

from eventsourcing.persistence import IntegrityError

from tests.base import DjangoDBTestCase, table_names
from tests.testapp import courses
from tests.testapp.courses import (
    CourseFullError,
    Courses,
    Enrolment,
    TooManyCoursesError,
)

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_shows_the_example_as_it_is() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(
        r"<!-- dcb-example: (\S+) -->\n```python\n(.*?)```", readme, re.S
    )
    assert [path for path, _ in blocks] == ["tests/testapp/courses.py"]
    assert blocks[0][1] == (ROOT / blocks[0][0]).read_text()


class TestCourses(DjangoDBTestCase):
    def test_the_readme_usage_runs(self) -> None:
        readme = (ROOT / "README.md").read_text()
        (usage,) = re.findall(r"<!-- dcb-usage -->\n```python\n(.*?)```", readme, re.S)
        namespace = dict(vars(courses))
        exec(compile(usage, "README.md", "exec"), namespace)
        self.assertEqual(namespace["app"].students_of(namespace["maths"]), ["Ada"])

    def test_students_join_courses_within_both_limits(self) -> None:
        app = Courses()
        self.assertTrue({"courses_dcb", "courses_dcb_tags"} <= table_names("default"))
        ada = app.register_student("Ada", max_courses=2)
        bob = app.register_student("Bob", max_courses=2)
        maths = app.register_course("Maths", places=1)
        art = app.register_course("Art", places=5)
        music = app.register_course("Music", places=5)

        app.join_course(ada, maths)
        self.assertEqual(app.students_of(maths), ["Ada"])
        # The course's limit.
        with self.assertRaises(CourseFullError):
            app.join_course(bob, maths)
        # The student's limit.
        app.join_course(ada, art)
        with self.assertRaises(TooManyCoursesError):
            app.join_course(ada, music)
        app.join_course(bob, art)
        self.assertEqual(app.students_of(art), ["Ada", "Bob"])

    def test_a_decision_on_what_changed_since_is_refused(self) -> None:
        app = Courses()
        ada = app.register_student("Ada", max_courses=2)
        bob = app.register_student("Bob", max_courses=2)
        maths = app.register_course("Maths", places=1)
        # Both decide on a course with a free place...
        first = app.repository.get_group(Enrolment, ada, maths)
        second = app.repository.get_group(Enrolment, bob, maths)
        first.join()
        second.join()
        app.repository.save(first)
        # ...and the second, whose boundary changed since it read, is refused.
        with self.assertRaises(IntegrityError):
            app.repository.save(second)
        self.assertEqual(app.students_of(maths), ["Ada"])
        # A decision on another boundary is not.
        art = app.register_course("Art", places=1)
        app.join_course(bob, art)
