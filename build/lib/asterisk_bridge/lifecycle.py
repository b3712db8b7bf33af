"""Rules for the state an operator changes by hand: workdays and the number lifecycle.

Pure: no store access (only its row types), no clock, no I/O. Every function takes the
facts it needs (the current state, `now`) and returns a decision or raises a
LifecycleError, so the CLI, the HTTP API
and the phone's feature codes apply exactly the same rules. Each error carries the HTTP
status the API answers with and a stable code, so callers never re-derive them.
"""

from __future__ import annotations

import calendar
import hmac
from datetime import datetime, timedelta
from typing import Final

from .policy.types import NumberStatus
from .store.rows import NumberState

# SPEC §6: "undo within 24 h restores it; after 24 h the number is disconnected".
UNDO_WINDOW: Final = timedelta(hours=24)
# SPEC §6: "reconnect is refused until 3 months after disconnection" (calendar months).
RECONNECT_AFTER_MONTHS: Final = 3

NOT_STARTED: Final = "not_started"
WORKDAY_ACTIONS: Final = ("start", "pause", "resume", "end")
# The API sets a target state; each maps to the action that reaches it from anywhere it can.
ACTION_FOR_STATE: Final = {"working": "start", "paused": "pause", "ended": "end"}


class LifecycleError(Exception):
    """A request the rules refuse; `status` is the HTTP status the API answers with."""

    status = 409
    code = "conflict"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WorkdayTransitionError(LifecycleError):
    code = "workday_transition"


class UnknownWorkdayAction(LifecycleError):
    status = 400
    code = "bad_state"


class NumberStateError(LifecycleError):
    """The number is not in a state where this lifecycle step applies."""

    code = "number_state"


class WrongUndoToken(LifecycleError):
    status = 403
    code = "wrong_token"


class UndoExpired(LifecycleError):
    code = "undo_expired"


class ReconnectTooEarly(LifecycleError):
    code = "reconnect_too_early"

    def __init__(self, message: str, allowed_at: datetime) -> None:
        super().__init__(message)
        self.allowed_at = allowed_at


# -- workday ----------------------------------------------------------------------------


def apply_workday_action(current: str | None, action: str) -> str:
    """The workday state after `action` ("start", "pause", "resume", "end").

    `current` is the stored state ("working", "paused", "ended") or None when the
    employee never started one. Start and end always succeed: start also brings a paused
    employee back, and ending twice is harmless, so a script ending everyone's day at
    midnight never fails. Pause and resume only make sense inside a started workday;
    outside one they are refused, because silently starting a day from "resume" would
    put an employee on the queue who may not be at her desk. Repeating pause or resume
    is a no-op rather than an error: a second press of the feature code must not fail.
    """
    if action not in WORKDAY_ACTIONS:
        raise UnknownWorkdayAction(
            f"unknown workday action {action!r}: expected one of {', '.join(WORKDAY_ACTIONS)}"
        )
    if action == "start":
        return "working"
    if action == "end":
        return "ended"
    if current not in ("working", "paused"):
        why = "has not started a workday" if current is None else "has ended the workday"
        raise WorkdayTransitionError(f"cannot {action}: the employee {why}; start it first")
    return "paused" if action == "pause" else "working"


def workday_action_for_state(state: object) -> str:
    """The action that reaches the API's target `state` ("working", "paused", "ended")."""
    action = ACTION_FOR_STATE.get(state) if isinstance(state, str) else None
    if action is None:
        raise UnknownWorkdayAction(
            f"state must be one of {', '.join(ACTION_FOR_STATE)}, not {state!r}"
        )
    return action


# -- number lifecycle -------------------------------------------------------------------


def effective_status(state: NumberState, now: datetime) -> NumberStatus:
    """The status a call or a listing sees at `now`; `state` is store.numbers.state().

    A pending disconnection becomes final when its undo window closes; this is computed
    on read so no background job has to flip it at the right moment on the right node.
    A number pending disconnection still takes calls.
    """
    status = state.status
    if status == NumberStatus.PENDING_DISCONNECT:
        changed = state.changed_at
        if changed is not None and now >= changed + UNDO_WINDOW:
            return NumberStatus.DISCONNECTED
        return NumberStatus.PENDING_DISCONNECT
    if status == NumberStatus.DISCONNECTED:
        return NumberStatus.DISCONNECTED
    return NumberStatus.ACTIVE


def disconnected_at(state: NumberState) -> datetime | None:
    """When the number is (or will be) disconnected for good; None when active."""
    changed = state.changed_at
    if changed is None:
        return None
    if state.status == NumberStatus.PENDING_DISCONNECT:
        return changed + UNDO_WINDOW
    if state.status == NumberStatus.DISCONNECTED:
        return changed
    return None


def reconnect_allowed_at(state: NumberState) -> datetime | None:
    gone = disconnected_at(state)
    return None if gone is None else add_months(gone, RECONNECT_AFTER_MONTHS)


def check_disconnect(state: NumberState, now: datetime) -> None:
    """Refuse to disconnect a number that is already on its way out."""
    status = effective_status(state, now)
    if status == "pending_disconnect":
        raise NumberStateError("the number is already pending disconnection")
    if status == "disconnected":
        raise NumberStateError("the number is already disconnected")


def check_undo(state: NumberState, token: str, now: datetime) -> None:
    """Allow undo with the emailed token while the 24 h window is open."""
    if state.status not in (NumberStatus.PENDING_DISCONNECT, NumberStatus.DISCONNECTED):
        raise NumberStateError("the number is active: there is no disconnection to undo")
    expected = state.undo_token or ""
    # Constant time: the token is the only thing guarding the undo.
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise WrongUndoToken("wrong undo token")
    if effective_status(state, now) == "disconnected":
        closed = disconnected_at(state)
        when = f" at {closed.isoformat()}" if closed else ""
        raise UndoExpired(f"the 24 h undo window closed{when}; the number is disconnected")


def check_reconnect(state: NumberState, now: datetime) -> None:
    """Allow reconnection 3 calendar months after the number was disconnected."""
    status = effective_status(state, now)
    if status == "active":
        raise NumberStateError("the number is active")
    if status == "pending_disconnect":
        raise NumberStateError("the number is pending disconnection: undo it with the token")
    allowed = reconnect_allowed_at(state)
    if allowed is not None and now < allowed:
        raise ReconnectTooEarly(
            f"reconnection is allowed from {allowed.isoformat()} "
            f"({RECONNECT_AFTER_MONTHS} months after disconnection)",
            allowed,
        )


def add_months(moment: datetime, months: int) -> datetime:
    """Same time `months` later; the 31st becomes the month's last day when it has none."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)
