"""Workday and number lifecycle rules, by table, with a fixed `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from asterisk_bridge.lifecycle import (
    NumberStateError,
    ReconnectTooEarly,
    UndoExpired,
    UnknownWorkdayAction,
    WorkdayTransitionError,
    add_months,
    apply_workday_action,
    check_disconnect,
    check_reconnect,
    check_undo,
    effective_status,
    reconnect_allowed_at,
    workday_action_for_state,
)
from asterisk_bridge.lifecycle import WrongUndoToken as WrongToken
from asterisk_bridge.policy.types import NumberStatus
from asterisk_bridge.store import NumberState

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("current", "action", "expected"),
    [
        (None, "start", "working"),
        ("ended", "start", "working"),
        ("working", "start", "working"),
        ("paused", "start", "working"),
        ("working", "pause", "paused"),
        ("paused", "pause", "paused"),
        ("paused", "resume", "working"),
        ("working", "resume", "working"),
        (None, "end", "ended"),
        ("working", "end", "ended"),
        ("paused", "end", "ended"),
        ("ended", "end", "ended"),
    ],
)
def test_workday_transitions(current: str | None, action: str, expected: str) -> None:
    assert apply_workday_action(current, action) == expected


@pytest.mark.parametrize(
    ("current", "action"),
    [(None, "pause"), (None, "resume"), ("ended", "pause"), ("ended", "resume")],
)
def test_pause_and_resume_need_a_started_workday(current: str | None, action: str) -> None:
    with pytest.raises(WorkdayTransitionError, match="start it first") as info:
        apply_workday_action(current, action)
    assert info.value.status == 409


def test_unknown_workday_action_is_a_bad_request() -> None:
    with pytest.raises(UnknownWorkdayAction) as info:
        apply_workday_action("working", "lunch")
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("state", "action"), [("working", "start"), ("paused", "pause"), ("ended", "end")]
)
def test_api_states_map_to_actions(state: str, action: str) -> None:
    assert workday_action_for_state(state) == action


@pytest.mark.parametrize("state", ["resume", "not_started", "", None, 3])
def test_api_rejects_other_states(state: object) -> None:
    with pytest.raises(UnknownWorkdayAction):
        workday_action_for_state(state)


def number_state(
    status: NumberStatus, changed_at: datetime | None = None, token: str | None = None
) -> NumberState:
    return NumberState(number="paris", status=status, changed_at=changed_at, undo_token=token)


def pending(ago: timedelta, token: str = "tok") -> NumberState:
    return number_state(NumberStatus.PENDING_DISCONNECT, NOW - ago, token)


ACTIVE = number_state(NumberStatus.ACTIVE)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (ACTIVE, "active"),
        (number_state(NumberStatus.ACTIVE, NOW - HOUR), "active"),
        (pending(timedelta(0)), "pending_disconnect"),
        (pending(timedelta(hours=23, minutes=59)), "pending_disconnect"),
        (pending(timedelta(hours=24)), "disconnected"),
        (pending(timedelta(days=40)), "disconnected"),
        (number_state(NumberStatus.DISCONNECTED, NOW), "disconnected"),
    ],
)
def test_effective_status_turns_final_after_24h(state: NumberState, expected: str) -> None:
    assert effective_status(state, NOW) == expected


@pytest.mark.parametrize(
    ("state", "error"),
    [
        (ACTIVE, None),
        (pending(HOUR), NumberStateError),
        (pending(timedelta(days=2)), NumberStateError),
    ],
)
def test_disconnect(state: NumberState, error: type[Exception] | None) -> None:
    if error is None:
        check_disconnect(state, NOW)
    else:
        with pytest.raises(error):
            check_disconnect(state, NOW)


@pytest.mark.parametrize(
    ("state", "token", "error", "status"),
    [
        (pending(HOUR), "tok", None, None),
        (pending(timedelta(hours=23, minutes=59)), "tok", None, None),
        (pending(HOUR), "nope", WrongToken, 403),
        (pending(HOUR), "", WrongToken, 403),
        (pending(HOUR, token=""), "", WrongToken, 403),
        (pending(timedelta(hours=24)), "tok", UndoExpired, 409),
        # The token is checked first: a stranger learns nothing about the window.
        (pending(timedelta(hours=30)), "nope", WrongToken, 403),
        (ACTIVE, "tok", NumberStateError, 409),
    ],
)
def test_undo(
    state: NumberState, token: str, error: type[Exception] | None, status: int | None
) -> None:
    if error is None:
        check_undo(state, token, NOW)
        return
    with pytest.raises(error) as info:
        check_undo(state, token, NOW)
    assert info.value.status == status


def test_reconnect_waits_three_months_after_disconnection() -> None:
    # Pending since 2026-08-26 09:00, disconnected 24 h later: allowed from 2026-11-27 09:00.
    state = number_state(NumberStatus.PENDING_DISCONNECT, datetime(2026, 8, 26, 9, tzinfo=UTC))
    assert reconnect_allowed_at(state) == NOW
    check_reconnect(state, NOW)
    with pytest.raises(ReconnectTooEarly, match="2026-11-27T09:00:00") as info:
        check_reconnect(state, NOW - timedelta(seconds=1))
    assert info.value.allowed_at == NOW
    assert info.value.status == 409


@pytest.mark.parametrize(
    ("state", "message"),
    [(ACTIVE, "active"), (pending(HOUR), "undo it with the token")],
)
def test_reconnect_needs_a_disconnected_number(state: NumberState, message: str) -> None:
    with pytest.raises(NumberStateError, match=message):
        check_reconnect(state, NOW)


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (datetime(2026, 1, 15, tzinfo=UTC), 3, datetime(2026, 4, 15, tzinfo=UTC)),
        (datetime(2026, 11, 30, tzinfo=UTC), 3, datetime(2027, 2, 28, tzinfo=UTC)),
        (datetime(2027, 11, 30, tzinfo=UTC), 3, datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2026, 10, 31, 23, 59, tzinfo=UTC), 3, datetime(2027, 1, 31, 23, 59, tzinfo=UTC)),
        (datetime(2026, 12, 1, tzinfo=UTC), 12, datetime(2027, 12, 1, tzinfo=UTC)),
    ],
)
def test_add_months_clamps_to_the_last_day(
    start: datetime, months: int, expected: datetime
) -> None:
    assert add_months(start, months) == expected
