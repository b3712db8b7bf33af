"""Working hours: windows, days off, holidays and DST days, by table."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from asterisk_bridge.policy.hours import (
    END_OF_DAY,
    Holiday,
    Schedule,
    is_open,
    parse_holiday,
    parse_windows,
)

PARIS = ZoneInfo("Europe/Paris")
WEEKDAYS_9_TO_18 = {day: "09:00-18:00" for day in ("mon", "tue", "wed", "thu", "fri")}

OFFICE = Schedule(
    timezone="Europe/Paris",
    week={**WEEKDAYS_9_TO_18, "fri": "09:00-12:00,14:00-17:00"},
    holidays=("01.01", "25.12", "2027-04-05"),
)
# Sunday windows placed on the 2026 DST days (29 March and 25 October are Sundays).
NIGHT_SHIFT = Schedule(
    timezone="Europe/Paris",
    week={"sun": "01:00-04:00"},
)
INSIDE_THE_GAP = Schedule(
    timezone="Europe/Paris", week={"sun": "02:15-02:45", "mon": "09:00-10:00"}
)
ACROSS_TWO = Schedule(timezone="Europe/Paris", week={"sun": "02:00-03:00"})


def paris(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(paris(2026, 11, 24, 9, 0), True, id="window start is inclusive"),
        pytest.param(paris(2026, 11, 24, 8, 59, 59), False, id="a second before start"),
        pytest.param(paris(2026, 11, 24, 17, 59, 59), True, id="a second before end"),
        pytest.param(paris(2026, 11, 24, 18, 0), False, id="window end is exclusive"),
        pytest.param(paris(2026, 11, 27, 12, 30), False, id="lunch gap between two windows"),
        pytest.param(paris(2026, 11, 27, 14, 0), True, id="second window of the day"),
        pytest.param(paris(2026, 11, 28, 10, 0), False, id="day absent from week is closed"),
        pytest.param(paris(2026, 12, 25, 10, 0), False, id="yearly holiday 25.12"),
        pytest.param(paris(2030, 12, 25, 10, 0), False, id="yearly holiday repeats"),
        pytest.param(paris(2026, 12, 24, 10, 0), True, id="day before a holiday is open"),
        pytest.param(paris(2027, 4, 5, 10, 0), False, id="one-off ISO holiday"),
        pytest.param(paris(2028, 4, 5, 10, 0), True, id="ISO holiday does not repeat"),
        # 08:30 UTC is 09:30 in Paris in winter: the schedule's clock decides, not UTC.
        pytest.param(utc(2026, 11, 24, 8, 30), True, id="utc instant read on the paris clock"),
        pytest.param(utc(2026, 11, 24, 7, 30), False, id="utc 07:30 is 08:30 in paris"),
        pytest.param(
            datetime(2026, 11, 24, 3, 30, tzinfo=ZoneInfo("America/New_York")),
            True,
            id="instant in another zone converted",
        ),
        # 24 Dec 23:30 UTC is already 25 Dec in Paris: the holiday applies to the local date.
        pytest.param(
            utc(2026, 12, 24, 23, 30),
            False,
            id="holiday compared on the local date",
        ),
    ],
)
def test_office_hours(now: datetime, expected: bool) -> None:
    assert is_open(OFFICE, now) is expected


@pytest.mark.parametrize(
    ("schedule", "now", "expected"),
    [
        # Spring forward, 2026-03-29: at 01:00 UTC Paris goes from 02:00 CET to 03:00 CEST.
        pytest.param(NIGHT_SHIFT, utc(2026, 3, 29, 0, 30), True, id="spring: 01:30 CET open"),
        pytest.param(NIGHT_SHIFT, utc(2026, 3, 29, 1, 0), True, id="spring: jump lands at 03:00"),
        pytest.param(NIGHT_SHIFT, utc(2026, 3, 29, 1, 59), True, id="spring: 03:59 CEST open"),
        pytest.param(NIGHT_SHIFT, utc(2026, 3, 29, 2, 0), False, id="spring: 04:00 CEST closed"),
        pytest.param(
            ACROSS_TWO, utc(2026, 3, 29, 0, 59), False, id="spring: 01:59 before a gap window"
        ),
        pytest.param(
            ACROSS_TWO, utc(2026, 3, 29, 1, 0), False, id="spring: window inside the gap never open"
        ),
        # Fall back, 2026-10-25: at 01:00 UTC Paris goes from 03:00 CEST back to 02:00 CET.
        pytest.param(
            ACROSS_TWO, utc(2026, 10, 25, 0, 30), True, id="fall: first pass of 02:30 open"
        ),
        pytest.param(
            ACROSS_TWO, utc(2026, 10, 25, 1, 30), True, id="fall: second pass of 02:30 open"
        ),
        pytest.param(
            ACROSS_TWO, utc(2026, 10, 25, 2, 0), False, id="fall: 03:00 CET closes the window"
        ),
        pytest.param(
            ACROSS_TWO, utc(2026, 10, 24, 23, 59), False, id="fall: 01:59 CEST before the window"
        ),
        pytest.param(NIGHT_SHIFT, utc(2026, 10, 25, 2, 59), True, id="fall: 03:59 CET still open"),
        pytest.param(NIGHT_SHIFT, utc(2026, 10, 25, 3, 0), False, id="fall: 04:00 CET closed"),
        pytest.param(
            ACROSS_TWO,
            paris(2026, 10, 25, 2, 30, fold=1),
            True,
            id="fall: aware paris time with fold=1",
        ),
    ],
)
def test_dst_days_follow_the_wall_clock(schedule: Schedule, now: datetime, expected: bool) -> None:
    assert is_open(schedule, now) is expected


def test_spring_window_lasts_two_real_hours_and_fall_window_four() -> None:
    def open_minutes(day_start_utc: datetime) -> int:
        minutes = (day_start_utc + timedelta(minutes=m) for m in range(24 * 60))
        return sum(is_open(NIGHT_SHIFT, t) for t in minutes)

    assert open_minutes(utc(2026, 3, 28, 23, 0)) == 2 * 60
    assert open_minutes(utc(2026, 10, 24, 22, 0)) == 4 * 60


@pytest.mark.parametrize(
    ("schedule", "now", "expected"),
    [
        pytest.param(None, utc(2026, 1, 1, 3, 0), True, id="no schedule is always open"),
        pytest.param(
            Schedule(timezone="Europe/Paris", week={}),
            paris(2026, 11, 24, 10, 0),
            False,
            id="empty week is never open",
        ),
        pytest.param(
            Schedule(timezone="Europe/Paris", week={"tue": "00:00-24:00"}),
            paris(2026, 11, 24, 23, 59, 59),
            True,
            id="24:00 keeps the day open until midnight",
        ),
        pytest.param(
            Schedule(timezone="Europe/Paris", week={"tue": "00:00-24:00"}),
            paris(2026, 11, 25, 0, 0),
            False,
            id="24:00 does not spill into the next day",
        ),
    ],
)
def test_special_schedules(schedule: Schedule | None, now: datetime, expected: bool) -> None:
    assert is_open(schedule, now) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:00-18:00", [(time(9), time(18))]),
        ("14:00-18:00, 09:00-12:00", [(time(9), time(12)), (time(14), time(18))]),
        (" 00:00-24:00 ", [(time(0), END_OF_DAY)]),
        ("09:00-12:00,12:00-13:00", [(time(9), time(12)), (time(12), time(13))]),
    ],
    ids=["one window", "sorted by start", "whole day", "touching windows"],
)
def test_parse_windows_accepts(text: str, expected: list[tuple[time, time]]) -> None:
    assert parse_windows(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "got nothing"),
        ("9-18", "not a time of day"),
        ("9:00-18:00", "not a time of day"),
        ("09:00", "START-END"),
        ("09:00-12:00-13:00", "START-END"),
        ("09:60-10:00", "not a time of day"),
        ("25:00-26:00", "not a time of day"),
        ("24:30-24:45", "past 24:00"),
        ("24:00-24:00", "starts at 24:00"),
        ("18:00-09:00", "ends before it starts"),
        ("09:00-09:00", "ends before it starts"),
        ("09:00-12:00,11:00-14:00", "overlap"),
    ],
)
def test_parse_windows_rejects_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_windows(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("25.12", Holiday(month=12, day=25)),
        ("29.02", Holiday(month=2, day=29)),
        ("2027-04-05", Holiday(month=4, day=5, year=2027)),
        ("2027-W01-1", Holiday(month=1, day=4, year=2027)),  # any ISO date config accepts
    ],
)
def test_parse_holiday_accepts(text: str, expected: Holiday) -> None:
    assert parse_holiday(text) == expected


@pytest.mark.parametrize("text", ["31.02", "12/25", "2027-02-30", "5.1", "2027-4-5", ""])
def test_parse_holiday_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="holiday"):
        parse_holiday(text)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_open(OFFICE, datetime(2026, 11, 24, 10, 0))


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        pytest.param(datetime(2026, 7, 14, 10, tzinfo=UTC), False, id="Bastille Day: closed"),
        pytest.param(datetime(2027, 3, 29, 10, tzinfo=UTC), False, id="Easter Monday 2027: closed"),
        pytest.param(datetime(2026, 7, 7, 10, tzinfo=UTC), True, id="an ordinary Tuesday: open"),
    ],
)
def test_a_country_calendar_closes_its_public_holidays(when: datetime, expected: bool) -> None:
    week = {day: "09:00-18:00" for day in ("mon", "tue", "wed")}
    schedule = Schedule(timezone="Europe/Paris", week=week, country="FR")
    assert is_open(schedule, when) is expected


def test_an_unknown_country_calendar_is_refused() -> None:
    with pytest.raises(ValueError, match="no public holiday calendar"):
        is_open(
            Schedule(timezone="UTC", week={"mon": "09:00-18:00"}, country="XX"),
            datetime(2026, 11, 30, 10, tzinfo=UTC),
        )
