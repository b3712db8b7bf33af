"""Recording quotas: may this call be recorded, and which month does it count toward.

The arithmetic lives here; the store makes it safe under concurrency (it counts the
recording against `quota_period` in the same transaction that checks `used`), so two
nodes never both take the last recording of a month.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHLY_RECORDING_QUOTA: Mapping[str, int | None] = MappingProxyType(
    {
        "free": 100,
        "project_plus": 100,
        "start_plus": 500,
        "crm_plus": None,
        "standard": None,
        "professional": None,
    }
)
"""Recordings per calendar month by plan (SPEC section 4, step 9); None is unlimited."""


class RecordingSkip(StrEnum):
    """Why a call was not recorded; the values are `recording_skipped` in call details."""

    QUOTA = "quota"
    DISABLED = "disabled"


@dataclass(frozen=True)
class RecordingDecision:
    """Record or not; `skipped` says why not (None when recording)."""

    record: bool
    skipped: RecordingSkip | None = None


def quota_period(now: datetime, timezone: str) -> str:
    """The "YYYY-MM" month `now` counts toward, in the account's time zone.

    The count resets on the 1st at local midnight, not UTC midnight, so the customer's
    month is the one they see on their own calendar: 2026-11-30T23:30Z is already
    "2026-12" in Europe/Paris.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware; a naive time has no instant")
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {timezone!r}") from None
    local = now.astimezone(tz)
    return f"{local.year:04d}-{local.month:02d}"


def remaining_recordings(plan: str, used: int) -> int | None:
    """Recordings left this month (never negative), or None when the plan is unlimited.

    An unknown plan is a ValueError rather than a guess: the config checker rejects it,
    so meeting one here is a fault, and guessing "unlimited" would give recordings away.
    """
    try:
        quota = MONTHLY_RECORDING_QUOTA[plan]
    except KeyError:
        raise ValueError(
            f"unknown plan {plan!r}; expected one of {', '.join(MONTHLY_RECORDING_QUOTA)}"
        ) from None
    return None if quota is None else max(0, quota - used)


def recording_decision(*, record_all: bool, plan: str, used: int) -> RecordingDecision:
    """Whether to record a call, given the number's `record_all` and this month's count.

    `used` is the number of recordings already counted in the current `quota_period`.
    Disabled wins over quota so that `recording_skipped` tells the operator the setting,
    not a quota they are not using. The plan is checked even when disabled, so a bad
    plan surfaces on every call rather than only on recorded ones.
    """
    left = remaining_recordings(plan, used)
    if not record_all:
        return RecordingDecision(record=False, skipped=RecordingSkip.DISABLED)
    if left is not None and left <= 0:
        return RecordingDecision(record=False, skipped=RecordingSkip.QUOTA)
    return RecordingDecision(record=True)
