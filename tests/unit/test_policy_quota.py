"""Recording quotas: plan limits, the account's local month, the decision, by table."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from asterisk_bridge.policy.quota import (
    MONTHLY_RECORDING_QUOTA,
    RecordingDecision,
    RecordingSkip,
    quota_period,
    recording_decision,
    remaining_recordings,
)


def test_plan_quotas_match_the_spec() -> None:
    assert dict(MONTHLY_RECORDING_QUOTA) == {
        "free": 100,
        "project_plus": 100,
        "start_plus": 500,
        "crm_plus": None,
        "standard": None,
        "professional": None,
    }


@pytest.mark.parametrize(
    ("now", "timezone", "expected"),
    [
        pytest.param(
            datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
            "Europe/Paris",
            "2026-12",
            id="paris is already in december at 23:30 utc",
        ),
        pytest.param(
            datetime(2026, 11, 30, 22, 59, 59, tzinfo=UTC),
            "Europe/Paris",
            "2026-11",
            id="last second of november in paris",
        ),
        pytest.param(
            datetime(2026, 11, 30, 23, 0, tzinfo=UTC),
            "Europe/Paris",
            "2026-12",
            id="reset exactly at local midnight on the 1st",
        ),
        pytest.param(
            datetime(2026, 12, 31, 23, 30, tzinfo=UTC),
            "Europe/Paris",
            "2027-01",
            id="new year in the account zone",
        ),
        pytest.param(
            datetime(2026, 12, 1, 3, 0, tzinfo=UTC),
            "America/New_York",
            "2026-11",
            id="zones west of utc are still in the previous month",
        ),
        pytest.param(
            datetime(2026, 3, 31, 22, 0, tzinfo=UTC),
            "Europe/Paris",
            "2026-04",
            id="summer time offset is used in april",
        ),
        pytest.param(
            datetime(2026, 12, 1, 0, 30, tzinfo=ZoneInfo("Europe/Paris")),
            "UTC",
            "2026-11",
            id="instant given in another zone",
        ),
    ],
)
def test_quota_period_is_the_local_month(now: datetime, timezone: str, expected: str) -> None:
    assert quota_period(now, timezone) == expected


@pytest.mark.parametrize(
    ("now", "timezone", "message"),
    [
        (datetime(2026, 12, 1), "Europe/Paris", "timezone-aware"),
        (datetime(2026, 12, 1, tzinfo=UTC), "Mars/Olympus", "unknown time zone"),
    ],
    ids=["naive now", "unknown zone"],
)
def test_quota_period_refuses_bad_input(now: datetime, timezone: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        quota_period(now, timezone)


RECORD = RecordingDecision(record=True, skipped=None)
OVER_QUOTA = RecordingDecision(record=False, skipped=RecordingSkip.QUOTA)
DISABLED = RecordingDecision(record=False, skipped=RecordingSkip.DISABLED)


@pytest.mark.parametrize(
    ("record_all", "plan", "used", "expected"),
    [
        pytest.param(True, "free", 0, RECORD, id="free plan first recording"),
        pytest.param(True, "free", 99, RECORD, id="free plan last recording"),
        pytest.param(True, "free", 100, OVER_QUOTA, id="free plan quota reached"),
        pytest.param(True, "project_plus", 100, OVER_QUOTA, id="project_plus quota reached"),
        pytest.param(True, "start_plus", 100, RECORD, id="start_plus allows more than 100"),
        pytest.param(True, "start_plus", 499, RECORD, id="start_plus last recording"),
        pytest.param(True, "start_plus", 500, OVER_QUOTA, id="start_plus quota reached"),
        pytest.param(True, "start_plus", 750, OVER_QUOTA, id="count above quota"),
        pytest.param(True, "crm_plus", 10_000, RECORD, id="crm_plus unlimited"),
        pytest.param(True, "standard", 10_000, RECORD, id="standard unlimited"),
        pytest.param(True, "professional", 10_000, RECORD, id="professional unlimited"),
        pytest.param(False, "professional", 0, DISABLED, id="record_all off"),
        pytest.param(False, "free", 100, DISABLED, id="disabled wins over quota"),
    ],
)
def test_recording_decision(
    record_all: bool, plan: str, used: int, expected: RecordingDecision
) -> None:
    assert recording_decision(record_all=record_all, plan=plan, used=used) == expected


def test_skip_reasons_are_the_call_detail_strings() -> None:
    assert OVER_QUOTA.skipped == "quota"
    assert DISABLED.skipped == "disabled"


@pytest.mark.parametrize(
    ("plan", "used", "expected"),
    [("free", 40, 60), ("free", 140, 0), ("start_plus", 0, 500), ("standard", 5, None)],
)
def test_remaining_recordings(plan: str, used: int, expected: int | None) -> None:
    assert remaining_recordings(plan, used) == expected


def test_unknown_plan_is_a_fault_not_unlimited() -> None:
    with pytest.raises(ValueError, match="unknown plan 'gold'"):
        recording_decision(record_all=True, plan="gold", used=0)
