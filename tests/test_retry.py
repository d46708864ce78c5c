"""The settings that say how long a call waits for a database that went away."""

from __future__ import annotations

import pytest
from django.test import override_settings

from eventsourcing_django.retry import (
    InvalidRetrySettingError,
    RetryPolicy,
    with_retries,
)


def test_by_default_five_retries_wait_a_tenth_of_a_second_doubling_up_to_one() -> None:
    assert list(RetryPolicy.from_settings().waits()) == [0.1, 0.2, 0.4, 0.8, 1.0]


@override_settings(EVENTSOURCING_RETRIES=0)
def test_zero_retries_turns_retrying_off() -> None:
    calls = []

    def fail() -> None:
        calls.append(1)
        raise ConnectionError

    with pytest.raises(ConnectionError):
        with_retries(fail, retry_on=(ConnectionError,), what="test")
    assert calls == [1]


@override_settings(EVENTSOURCING_RETRIES=2, EVENTSOURCING_RETRY_DELAY=0)
def test_an_error_is_retried_as_many_times_as_set_then_raised() -> None:
    calls = []

    def fail_twice() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError
        return "done"

    assert with_retries(fail_twice, retry_on=(ConnectionError,), what="t") == "done"
    assert len(calls) == 3


def test_other_errors_are_not_retried() -> None:
    calls = []

    def fail() -> None:
        calls.append(1)
        raise KeyError

    with pytest.raises(KeyError):
        with_retries(fail, retry_on=(ConnectionError,), what="test")
    assert calls == [1]


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("EVENTSOURCING_RETRIES", -1),
        ("EVENTSOURCING_RETRIES", "3"),
        ("EVENTSOURCING_RETRIES", True),
        ("EVENTSOURCING_RETRY_DELAY", -0.1),
        ("EVENTSOURCING_RETRY_DELAY", "fast"),
    ],
)
def test_unusable_settings_are_refused_naming_the_setting(
    setting: str, value: object
) -> None:
    with (
        override_settings(**{setting: value}),
        pytest.raises(InvalidRetrySettingError, match=f"settings.{setting}"),
    ):
        RetryPolicy.from_settings()
