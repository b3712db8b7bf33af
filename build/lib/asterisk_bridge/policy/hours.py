"""Working hours: is a number open at an instant, and when does it open next.

All comparisons happen on the schedule's local wall clock, because that is how an
operator writes hours ("09:00-18:00" in Paris means 09:00 on the office clock, whatever
the offset that day). Consequences across DST changes, which the tests pin down:

* spring forward (Europe/Paris, last Sunday of March, 02:00 -> 03:00): wall times in the
  gap never occur, so a window "01:00-04:00" lasts two real hours that day, and a window
  entirely inside the gap ("02:15-02:45") does not open at all;
* fall back (last Sunday of October, 03:00 -> 02:00): 02:00-03:00 occurs twice and a
  window covering it is open during both passes, lasting one real hour longer.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Keys of `Schedule.week`, indexed by `date.weekday()`."""

END_OF_DAY = time.max
"""What "24:00" parses to: a window may run up to midnight, and it stays open until then."""


_CLOCK = re.compile(r"(?P<h>[01]\d|2[0-4]):(?P<m>[0-5]\d)")
_YEARLY = re.compile(r"(?P<d>\d{2})\.(?P<m>\d{2})")


@dataclass(frozen=True)
class Schedule:
    """A weekly timetable in one time zone, with days off.

    `week` maps "mon".."sun" to windows ("09:00-18:00" or "09:00-12:00,14:00-18:00");
    a day absent is closed all day, and an empty `week` is never open. `holidays` are
    "DD.MM" (every year) or "YYYY-MM-DD" (that day only), both closed all day and
    compared with the local date, not the UTC one. `country` (ISO 3166, optionally with
    `subdivision`) adds that country's public holidays from the `holidays` calendar, a
    maintained list, so Easter Monday and its kind need no yearly edit.
    """

    timezone: str
    week: Mapping[str, str]
    holidays: Sequence[str] = ()
    country: str | None = None
    subdivision: str | None = None


@dataclass(frozen=True)
class Holiday:
    """A parsed holiday: `year` is None for one that repeats every year."""

    month: int
    day: int
    year: int | None = None

    def matches(self, day: date) -> bool:
        """True when `day` is this holiday (a yearly 29.02 only matches leap years)."""
        return (
            day.month == self.month
            and day.day == self.day
            and (self.year is None or day.year == self.year)
        )


def _parse_clock(text: str, *, what: str) -> time:
    """Parse "HH:MM"; "24:00" is allowed and means the end of the day."""
    found = _CLOCK.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{what} {text.strip()!r} is not a time of day HH:MM")
    hour, minute = int(found["h"]), int(found["m"])
    if hour == 24:
        if minute:
            raise ValueError(f"{what} {text.strip()!r} is past 24:00")
        return END_OF_DAY
    return time(hour, minute)


def parse_windows(text: str) -> list[tuple[time, time]]:
    """Parse one day's windows, e.g. "09:00-12:00,14:00-18:00", sorted by start.

    Raises ValueError naming the faulty part, so the config checker can report it at
    load time instead of a call finding out. Windows must not be empty, reversed
    (a window over midnight is two days' windows) or overlapping, since each of those is
    almost always a typo. Each window is [start, end): start inclusive, end exclusive;
    "24:00" ends at midnight.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("expected open windows like '09:00-18:00', got nothing")
    windows: list[tuple[time, time]] = []
    for part in text.split(","):
        bounds = part.split("-")
        if len(bounds) != 2:
            raise ValueError(f"window {part.strip()!r} is not START-END like '09:00-18:00'")
        start = _parse_clock(bounds[0], what="start")
        if start is END_OF_DAY:
            raise ValueError(f"window {part.strip()!r} starts at 24:00")
        end = _parse_clock(bounds[1], what="end")
        if end <= start:
            raise ValueError(
                f"window {part.strip()!r} ends before it starts "
                "(split a window over midnight between two days)"
            )
        windows.append((start, end))
    windows.sort()
    for (_, end), (start, _) in pairwise(windows):
        if start < end:
            raise ValueError(f"windows in {text.strip()!r} overlap")
    return windows


def parse_holiday(text: str) -> Holiday:
    """Parse "DD.MM" (yearly) or "YYYY-MM-DD" (one day); ValueError if neither."""
    raw = text.strip() if isinstance(text, str) else ""
    if found := _YEARLY.fullmatch(raw):
        day, month = int(found["d"]), int(found["m"])
        try:
            date(2024, month, day)  # a leap year, so 29.02 is accepted
        except ValueError:
            raise ValueError(f"holiday {text!r} is not a real day DD.MM") from None
        return Holiday(month=month, day=day)
    # Same acceptance as the config checker (any 10-character ISO date), so a schedule
    # that passed the load-time check can never fail here in the middle of a call.
    if len(raw) == 10 and raw[:4].isdigit():
        try:
            when = date.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"holiday {text!r} is not a real date YYYY-MM-DD") from None
        return Holiday(month=when.month, day=when.day, year=when.year)
    raise ValueError(f"holiday {text!r} is neither DD.MM (every year) nor YYYY-MM-DD")


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`, or ValueError (ZoneInfoNotFoundError is a KeyError)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {name!r}") from None


@functools.lru_cache(maxsize=64)
def public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    """The public holidays of `country` in `year` (ValueError for a country or
    subdivision the calendar does not know). Cached: one build per country and year."""
    try:
        calendar = holidays.country_holidays(country, subdiv=subdivision, years=year)
    except NotImplementedError as exc:  # unknown country or subdivision: says which
        raise ValueError(f"no public holiday calendar: {exc}") from None
    return frozenset(calendar)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware; a naive time has no instant")


def _day_windows(schedule: Schedule, day: date) -> list[tuple[time, time]]:
    """The windows that apply on local date `day` (none on a holiday or day off)."""
    if any(parse_holiday(text).matches(day) for text in schedule.holidays):
        return []
    if schedule.country and day in public_holidays(
        schedule.country, schedule.subdivision, day.year
    ):
        return []
    text = schedule.week.get(WEEKDAYS[day.weekday()])
    return [] if text is None else parse_windows(text)


def _inside(clock: time, window: tuple[time, time]) -> bool:
    start, end = window
    return start <= clock and (clock < end or end is END_OF_DAY)


def is_open(schedule: Schedule | None, now: datetime) -> bool:
    """True when `now` (aware, any zone) falls in an open window of the local day.

    None means no schedule, i.e. always open, matching `working_hours.schedule: null`.
    """
    if schedule is None:
        return True
    _require_aware(now)
    local = now.astimezone(zone(schedule.timezone))
    clock = local.time().replace(tzinfo=None)
    return any(_inside(clock, w) for w in _day_windows(schedule, local.date()))
