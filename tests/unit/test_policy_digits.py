"""DTMF matching for IVR menus and extension dialing, by table."""

from __future__ import annotations

import pytest

from asterisk_bridge.policy.digits import (
    Match,
    MatchStatus,
    TypedKind,
    extension_on_timeout,
    match_extension,
    match_menu,
    match_on_timeout,
    match_typed_ahead,
)

INCOMPLETE = Match(MatchStatus.INCOMPLETE)
INVALID = Match(MatchStatus.INVALID)


def complete(value: str) -> Match:
    return Match(MatchStatus.COMPLETE, value)


SPEC_MENU = frozenset({"1", "2", "3", "8", "9", "0"})
NESTED_MENU = frozenset({"1", "2", "21", "22", "305"})


@pytest.mark.parametrize(
    ("buffer", "options", "expected"),
    [
        pytest.param("1", SPEC_MENU, complete("1"), id="single digit option acts at once"),
        pytest.param("5", SPEC_MENU, INVALID, id="digit that is no option"),
        pytest.param("", SPEC_MENU, INCOMPLETE, id="nothing typed yet"),
        pytest.param("11", SPEC_MENU, INVALID, id="too many digits"),
        pytest.param("1", NESTED_MENU, complete("1"), id="no longer option shares the digit"),
        pytest.param("2", NESTED_MENU, INCOMPLETE, id="option that a longer one extends waits"),
        pytest.param("21", NESTED_MENU, complete("21"), id="two digit option"),
        pytest.param("23", NESTED_MENU, INVALID, id="wrong second digit"),
        pytest.param("3", NESTED_MENU, INCOMPLETE, id="start of a three digit option"),
        pytest.param("30", NESTED_MENU, INCOMPLETE, id="middle of a three digit option"),
        pytest.param("305", NESTED_MENU, complete("305"), id="three digit option"),
        pytest.param("2#", NESTED_MENU, complete("2"), id="hash ends the entry at once"),
        pytest.param("3#", NESTED_MENU, INVALID, id="hash after a mere start is invalid"),
        pytest.param("#", SPEC_MENU, INVALID, id="hash alone is invalid"),
        pytest.param("*", SPEC_MENU, INVALID, id="star is no option"),
        pytest.param("1", frozenset(), INVALID, id="menu without options"),
        pytest.param("", frozenset(), INVALID, id="empty menu cannot be completed"),
        pytest.param("#", frozenset({"#", "1"}), complete("#"), id="hash as an option"),
        pytest.param("1", ["1", "1"], complete("1"), id="a list of options works like a set"),
    ],
)
def test_match_menu(buffer: str, options: frozenset[str], expected: Match) -> None:
    assert match_menu(buffer, options) == expected


@pytest.mark.parametrize(
    ("buffer", "options", "expected"),
    [
        pytest.param("2", NESTED_MENU, complete("2"), id="pause completes a prefix option"),
        pytest.param("3", NESTED_MENU, INVALID, id="pause on a mere start is invalid"),
        pytest.param("", NESTED_MENU, INVALID, id="first digit timeout counts as failure"),
        pytest.param("21", NESTED_MENU, complete("21"), id="complete option stays complete"),
        pytest.param("7", NESTED_MENU, INVALID, id="unknown digit"),
    ],
)
def test_match_on_timeout(buffer: str, options: frozenset[str], expected: Match) -> None:
    assert match_on_timeout(buffer, options) == expected


@pytest.mark.parametrize(
    ("buffer", "max_len", "expected"),
    [
        pytest.param("", 4, INCOMPLETE, id="nothing typed yet"),
        pytest.param("1", 4, INCOMPLETE, id="one digit waits"),
        pytest.param("101", 4, INCOMPLETE, id="short extension waits for more"),
        pytest.param("1010", 4, complete("1010"), id="max length completes"),
        pytest.param("10100", 4, INVALID, id="longer than max length"),
        pytest.param("101#", 4, complete("101"), id="hash ends the entry"),
        pytest.param("1010#", 4, complete("1010"), id="hash after max length digits"),
        pytest.param("#", 4, INVALID, id="hash alone is invalid"),
        pytest.param("1#1", 4, INVALID, id="hash inside the digits"),
        pytest.param("1*", 4, INVALID, id="star is no digit"),
        pytest.param("1A", 4, INVALID, id="dtmf letter is no digit"),
        pytest.param("١٠", 4, INVALID, id="non ascii digits are refused"),
        pytest.param("12", 2, complete("12"), id="shorter max length"),
    ],
)
def test_match_extension(buffer: str, max_len: int, expected: Match) -> None:
    assert match_extension(buffer, max_len=max_len) == expected


KNOWN = frozenset({"101", "102", "10", "2001"})


@pytest.mark.parametrize(
    ("buffer", "expected"),
    [
        pytest.param("101", complete("101"), id="known extension completes without waiting"),
        pytest.param("10", INCOMPLETE, id="extension extended by a longer one waits"),
        pytest.param("10#", complete("10"), id="hash picks the shorter extension"),
        pytest.param("3", INVALID, id="no extension starts with the digits"),
        pytest.param("103", INVALID, id="unknown extension fails at once"),
        pytest.param("2", INCOMPLETE, id="start of a known extension"),
        pytest.param("105#", INVALID, id="hash on an unknown extension"),
        pytest.param("", INCOMPLETE, id="nothing typed yet"),
    ],
)
def test_match_extension_against_known_extensions(buffer: str, expected: Match) -> None:
    assert match_extension(buffer, extensions=KNOWN) == expected


@pytest.mark.parametrize(
    ("buffer", "expected"),
    [
        pytest.param("101", complete("101"), id="pause completes the digits"),
        pytest.param("", INVALID, id="nothing typed"),
        pytest.param("1*", INVALID, id="malformed"),
    ],
)
def test_extension_on_timeout(buffer: str, expected: Match) -> None:
    assert extension_on_timeout(buffer) == expected


# -- typed ahead during the greeting (SPEC section 9) -----------------------------------------

EXTENSIONS = {"101", "102", "205"}
OPTIONS = {"1", "2", "3", "41"}


@pytest.mark.parametrize(
    ("buffer", "extensions", "timed_out", "kind", "value"),
    [
        ("102", EXTENSIONS, False, TypedKind.EXTENSION, "102"),
        ("3", EXTENSIONS, False, TypedKind.OPTION, "3"),  # no extension starts with 3
        ("1", EXTENSIONS, False, TypedKind.WAIT, None),  # could still be 101 or 102
        ("1", EXTENSIONS, True, TypedKind.OPTION, "1"),  # the caller stopped at "1"
        ("2", EXTENSIONS, False, TypedKind.WAIT, None),  # 205 starts with it
        ("4", EXTENSIONS, False, TypedKind.WAIT, None),  # 41 may follow
        ("41", EXTENSIONS, False, TypedKind.OPTION, "41"),
        ("7", EXTENSIONS, False, TypedKind.NOTHING, None),
        ("109", EXTENSIONS, False, TypedKind.NOTHING, None),
        ("1", None, False, TypedKind.OPTION, "1"),  # extension dialing off
        ("102", None, False, TypedKind.NOTHING, None),
        ("9", EXTENSIONS, True, TypedKind.NOTHING, None),
    ],
)
def test_typed_ahead_digits(
    buffer: str, extensions: set[str] | None, timed_out: bool, kind: TypedKind, value: str | None
) -> None:
    typed = match_typed_ahead(buffer, extensions=extensions, options=OPTIONS, timed_out=timed_out)
    assert (typed.kind, typed.value) == (kind, value)
