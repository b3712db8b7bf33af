"""Post-call rating digits, by table."""

from __future__ import annotations

import pytest

from asterisk_bridge.policy.rating import parse_rating


@pytest.mark.parametrize(
    ("digit", "expected"),
    [
        ("1", 1),
        ("3", 3),
        ("5", 5),
        ("0", None),
        ("6", None),
        ("9", None),
        ("*", None),
        ("#", None),
        ("", None),
        ("12", None),
        ("5#", None),
        ("٣", None),
    ],
)
def test_parse_rating_accepts_one_key_from_1_to_5(digit: str, expected: int | None) -> None:
    assert parse_rating(digit) == expected
