"""The README's DCB example: students join courses, within two limits.

A course has a number of places; a student takes at most a number of courses.
Joining a course decides on both at once: the decision reads the events tagged
with the student or the course, and appends its own on the condition that no
event with either tag was appended since. Two decisions that race for the last
place cannot both succeed: one gets the library's ``IntegrityError``.
"""

from __future__ import annotations

from typing import ClassVar

from eventsourcing.dcb.application import DCBApplication
from eventsourcing.dcb.domain import EnduringObject, Group
from eventsourcing.dcb.msgpack import Decision, InitialDecision
from eventsourcing.domain import event


class StudentJoinedCourse(Decision):
    student_id: str
    course_id: str


class Student(EnduringObject[Decision, str]):
    class Registered(InitialDecision):
        student_id: str
        name: str
        max_courses: int

    @event(Registered)
    def __init__(self, name: str, max_courses: int) -> None:
        self.name = name
        self.max_courses = max_courses
        self.course_ids: list[str] = []

    @event(StudentJoinedCourse)
    def _(self, course_id: str) -> None:
        self.course_ids.append(course_id)


class Course(EnduringObject[Decision, str]):
    class Registered(InitialDecision):
        course_id: str
        name: str
        places: int

    @event(Registered)
    def __init__(self, name: str, places: int) -> None:
        self.name = name
        self.places = places
        self.student_ids: list[str] = []

    @event(StudentJoinedCourse)
    def _(self, student_id: str) -> None:
        self.student_ids.append(student_id)


class CourseFullError(Exception):
    pass


class TooManyCoursesError(Exception):
    pass


class Enrolment(Group[Decision]):
    """One student and one course: the consistency boundary of joining."""

    def __init__(self, student: Student, course: Course) -> None:
        self.student = student
        self.course = course

    def join(self) -> None:
        if len(self.course.student_ids) >= self.course.places:
            raise CourseFullError(self.course.name)
        if len(self.student.course_ids) >= self.student.max_courses:
            raise TooManyCoursesError(self.student.name)
        self.trigger_event(
            StudentJoinedCourse, student_id=self.student.id, course_id=self.course.id
        )


class Courses(DCBApplication):
    env: ClassVar[dict[str, str]] = {
        "PERSISTENCE_MODULE": "eventsourcing_django",
        "MAPPER_TOPIC": "eventsourcing.dcb.msgpack:MessagePackMapper",
    }

    def register_student(self, name: str, max_courses: int) -> str:
        student = Student(name=name, max_courses=max_courses)
        self.repository.save(student)
        return student.id

    def register_course(self, name: str, places: int) -> str:
        course = Course(name=name, places=places)
        self.repository.save(course)
        return course.id

    def join_course(self, student_id: str, course_id: str) -> None:
        enrolment = self.repository.get_group(Enrolment, student_id, course_id)
        enrolment.join()
        self.repository.save(enrolment)

    def students_of(self, course_id: str) -> list[str]:
        course = self.repository.get(course_id)
        assert isinstance(course, Course)
        students = [self.repository.get(s) for s in course.student_ids]
        return [s.name for s in students if isinstance(s, Student)]
