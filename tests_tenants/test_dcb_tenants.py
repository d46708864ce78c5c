"""A DCB application per tenant: each tenant's tagged events, reads and append
conditions in its own schema, never another's (nor public's)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from eventsourcing.dcb.api import (
    DCBAppendCondition,
    DCBEvent,
    DCBQuery,
    DCBQueryItem,
)
from eventsourcing.persistence import IntegrityError

from eventsourcing_django.tenants import (
    empty_cloned_tables,
    get_application,
    get_tenant_application,
)
from tests.testapp.courses import CourseFullError, Courses
from tests_tenants.test_tenants import count_rows

SHARED = DCBQuery([DCBQueryItem(tags=["shared-tag"])])


def test_one_tenants_events_never_fail_anothers_conditions() -> None:
    a = get_tenant_application(Courses, "tenant_a")
    b = get_tenant_application(Courses, "tenant_b")
    assert a is not b
    assert (a.recorder.schema, b.recorder.schema) == ("tenant_a", "tenant_b")

    assert a.recorder.append([DCBEvent("E", b"a", ["shared-tag"])]) == 1
    # B has no event with the tag: its condition holds, its positions start at 1.
    assert (
        b.recorder.append(
            [DCBEvent("E", b"b", ["shared-tag"])], DCBAppendCondition(SHARED)
        )
        == 1
    )
    # Its own event now fails the same condition; A's read sees only A's.
    with pytest.raises(IntegrityError):
        b.recorder.append(
            [DCBEvent("E", b"b2", ["shared-tag"])], DCBAppendCondition(SHARED)
        )
    assert [e.event.data for e in a.recorder.read(SHARED)] == [b"a"]
    assert [e.event.data for e in b.recorder.read(SHARED)] == [b"b"]
    assert a.recorder.read(SHARED).head == 1
    assert count_rows("tenant_a", "courses_dcb") == 1
    assert count_rows("tenant_b", "courses_dcb") == 1
    assert count_rows("tenant_c", "courses_dcb") == 0
    assert count_rows("public", "courses_dcb") == 0
    assert count_rows("public", "courses_dcb_tags") == 0


def test_the_example_runs_per_tenant_from_any_thread() -> None:
    connection.set_schema("tenant_a")
    courses_a = get_application(Courses)
    maths_a = courses_a.register_course("Maths", places=1)
    courses_a.join_course(courses_a.register_student("Ada", max_courses=1), maths_a)
    connection.set_schema_to_public()

    courses_c = get_tenant_application(Courses, "tenant_c")
    results: dict[str, Any] = {}

    def work() -> None:
        # This thread's connection starts in public, as django-tenants leaves it.
        maths_c = courses_c.register_course("Maths", places=1)
        courses_c.join_course(courses_c.register_student("Bob", 1), maths_c)
        results["students"] = courses_c.students_of(maths_c)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert results == {"students": ["Bob"]}
    # Tenant A's course is full in A only.
    with pytest.raises(CourseFullError):
        courses_a.join_course(courses_a.register_student("Cy", 1), maths_a)
    assert courses_a.students_of(maths_a) == ["Ada"]
    assert count_rows("tenant_a", "courses_dcb") == 4
    assert count_rows("tenant_c", "courses_dcb") == 3
    assert count_rows("public", "courses_dcb") == 0


def test_a_cloned_schemas_dcb_tables_are_emptied_and_positions_restart() -> None:
    # What django-tenants' cloning leaves (rows and a sequence from the
    # template) is what empty_cloned_tables undoes, told by the tables' comments.
    a = get_tenant_application(Courses, "tenant_a")
    a.recorder.append([DCBEvent("E", b"1", ["t"]), DCBEvent("E", b"2", ["t"])])
    emptied = empty_cloned_tables("tenant_a")
    assert {"courses_dcb", "courses_dcb_tags"} <= set(emptied)
    assert count_rows("tenant_a", "courses_dcb_tags") == 0
    assert list(a.recorder.read()) == []
    assert a.recorder.append([DCBEvent("E", b"3", ["t"])]) == 1
