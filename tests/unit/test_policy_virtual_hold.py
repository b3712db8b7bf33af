"""Virtual hold's pure decisions (policy.virtual_hold), by table: who is offered a
callback, when the offer comes and repeats, what the caller hears, and which kept places
come up in a queue's line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from asterisk_bridge.policy.virtual_hold import (
    OFFER_INTERVAL_SECONDS,
    Place,
    due_places,
    held_ahead,
    key_prompt,
    may_offer,
    next_offer_at,
    offer_due,
    pressed,
)

ALLOW = ["+33*", "+32*"]
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("phone", "has_callback", "expected"),
    [
        pytest.param("+33612345678", False, True, id="allowed E.164: offered"),
        pytest.param("+32470123456", False, True, id="second pattern: offered"),
        pytest.param("+33612345678", True, False, id="already has a callback: not offered"),
        pytest.param("+4915112345678", False, False, id="outside the allowlist: not offered"),
        pytest.param("0612345678", False, False, id="national format: not offered"),
        pytest.param("anonymous", False, False, id="withheld: not offered"),
        pytest.param("", False, False, id="no caller id: not offered"),
    ],
)
def test_who_is_offered_a_callback(phone: str, has_callback: bool, expected: bool) -> None:
    assert may_offer(phone, ALLOW, has_callback=has_callback) is expected


def test_nobody_is_offered_with_an_empty_allowlist() -> None:
    assert may_offer("+33612345678", [], has_callback=False) is False


@pytest.mark.parametrize(
    ("waited", "last_offer", "expected"),
    [
        pytest.param(29.9, None, False, id="before after: not yet"),
        pytest.param(30.0, None, True, id="at after: the first offer"),
        pytest.param(31.0, 30.0, False, id="just after the first: not again"),
        pytest.param(89.9, 30.0, False, id="a minute later, not quite"),
        pytest.param(90.0, 30.0, True, id="a minute later: the second"),
        pytest.param(150.0, 90.0, True, id="and once a minute after"),
        pytest.param(200.0, None, True, id="first due late (she was ringing members): now"),
        pytest.param(210.0, 200.0, False, id="then a minute after that, not at once"),
    ],
)
def test_the_offer_comes_after_the_wait_then_once_a_minute(
    waited: float, last_offer: float | None, expected: bool
) -> None:
    assert offer_due(waited=waited, after=30, last_offer=last_offer) is expected


def test_the_next_offer_is_a_minute_after_the_previous() -> None:
    assert OFFER_INTERVAL_SECONDS == 60.0
    assert next_offer_at(after=5, last_offer=None) == 5.0
    assert next_offer_at(after=5, last_offer=5.0) == 65.0
    assert next_offer_at(after=5, last_offer=140.0) == 200.0


@pytest.mark.parametrize(
    ("key", "prompt"),
    [
        ("1", "number-1"),
        ("9", "number-9"),
        ("0", "key-0"),
        ("*", "key-star"),
        ("#", "key-hash"),
    ],
)
def test_the_key_is_said_by_a_prompt_of_every_language(key: str, prompt: str) -> None:
    assert key_prompt(key) == prompt


@pytest.mark.parametrize("key", ["", "12", "a", "+"])
def test_a_key_that_is_no_keypad_key_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="not a keypad key"):
        key_prompt(key)


@pytest.mark.parametrize(
    ("digits", "key", "expected"),
    [
        ("1", "1", True),
        ("231", "1", True),
        ("2", "1", False),
        ("", "1", False),
        ("#", "#", True),
        ("1", "", False),
    ],
)
def test_only_the_key_takes_the_offer(digits: str, key: str, expected: bool) -> None:
    assert pressed(digits, key) is expected


def test_kept_places_that_joined_earlier_count_as_callers_ahead() -> None:
    held = [at(0), at(10), at(20)]
    assert held_ahead(at(15), held) == 2
    assert held_ahead(at(0), held) == 0  # not ahead of the moment itself
    assert held_ahead(at(25), []) == 0


def caller(seconds: float, ident: str = "") -> Place:
    return Place(at(seconds), False, ident or f"call-{seconds}")


def kept(seconds: float, ident: str = "") -> Place:
    return Place(at(seconds), True, ident or f"job-{seconds}")


@pytest.mark.parametrize(
    ("line", "available", "due"),
    [
        pytest.param([kept(0)], 1, ["job-0"], id="alone in the line and a member free"),
        pytest.param([kept(0)], 0, [], id="nobody free: nobody due"),
        pytest.param([caller(0), kept(10)], 1, [], id="a caller who came first goes first"),
        pytest.param([kept(0), caller(10)], 1, ["job-0"], id="the kept place came first"),
        pytest.param([caller(10), kept(0)], 1, ["job-0"], id="order is by joining, not by listing"),
        pytest.param([caller(0), kept(10)], 2, ["job-10"], id="two free: both go"),
        pytest.param(
            [kept(0), kept(5), kept(9)], 2, ["job-0", "job-5"], id="kept places in join order"
        ),
        pytest.param(
            [kept(0, "job-b"), kept(0, "job-a")],
            1,
            ["job-a"],
            id="same moment: every node picks the same one",
        ),
        pytest.param([caller(0), caller(1)], 5, [], id="no kept place: nothing for the worker"),
    ],
)
def test_which_kept_places_come_up(line: list[Place], available: int, due: list[str]) -> None:
    assert [place.ident for place in due_places(line, available)] == due
