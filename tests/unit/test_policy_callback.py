"""Callback attempt timing and exhaustion, by table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from asterisk_bridge.policy.callback import callback_exhausted, next_attempt_at

CREATED = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("attempt_no", "delay", "expected"),
    [
        pytest.param(1, 300, CREATED, id="first attempt at once"),
        pytest.param(2, 300, CREATED + timedelta(seconds=300), id="second after one delay"),
        pytest.param(3, 300, CREATED + timedelta(seconds=600), id="third after two delays"),
        pytest.param(2, timedelta(minutes=2), CREATED + timedelta(minutes=2), id="timedelta delay"),
        pytest.param(2, 0, CREATED, id="zero delay"),
    ],
)
def test_next_attempt_at_is_a_fixed_grid_from_creation(
    attempt_no: int, delay: float | timedelta, expected: datetime
) -> None:
    assert next_attempt_at(CREATED, attempt_no, delay) == expected


@pytest.mark.parametrize(
    ("attempt_no", "delay", "message"),
    [(0, 300, "counts from 1"), (1, -5, "negative")],
    ids=["attempt zero", "negative delay"],
)
def test_next_attempt_at_refuses_bad_input(attempt_no: int, delay: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        next_attempt_at(CREATED, attempt_no, delay)


@pytest.mark.parametrize(
    ("attempts_made", "attempts", "expected"),
    [(0, 3, False), (2, 3, False), (3, 3, True), (4, 3, True), (0, 0, True)],
)
def test_callback_exhausted_after_the_configured_attempts(
    attempts_made: int, attempts: int, expected: bool
) -> None:
    assert callback_exhausted(attempts_made, attempts) is expected
