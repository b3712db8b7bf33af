"""Outbound prefix selection, E.164 destinations and dial-string safety, by table."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from asterisk_bridge.policy.numbers import (
    allowed_external,
    employee_may_use,
    is_e164,
    is_safe_dial_token,
    normalize_destination,
    select_outbound,
)

PREFIXES = {"paris": "*123*", "lyon": "*12*", "berlin": "#7", "silent": ""}


@pytest.mark.parametrize(
    ("dialed", "expected"),
    [
        pytest.param("*123*0612345678", ("paris", "0612345678"), id="longest prefix wins"),
        pytest.param("*12*0612345678", ("lyon", "0612345678"), id="shorter prefix alone"),
        pytest.param("*1230612345678", None, id="near miss matches nothing"),
        pytest.param("#7+4915112345678", ("berlin", "+4915112345678"), id="hash prefix"),
        pytest.param("0612345678", None, id="no prefix dialed"),
        pytest.param("*123*", ("paris", ""), id="prefix only leaves nothing to dial"),
        pytest.param("", None, id="empty dial"),
    ],
)
def test_select_outbound(dialed: str, expected: tuple[str, str] | None) -> None:
    assert select_outbound(dialed, PREFIXES) == expected


def test_select_outbound_ignores_mapping_order() -> None:
    reversed_prefixes = dict(reversed(list(PREFIXES.items())))
    assert select_outbound("*123*0612345678", reversed_prefixes) == ("paris", "0612345678")


def test_select_outbound_breaks_a_tie_by_smallest_id() -> None:
    assert select_outbound("*9*1", {"zeta": "*9*", "alpha": "*9*"}) == ("alpha", "1")


@pytest.mark.parametrize(
    ("digits", "region", "expected"),
    [
        pytest.param("0612345678", "FR", "+33612345678", id="french national mobile"),
        pytest.param("0185000000", "FR", "+33185000000", id="french national landline"),
        pytest.param("+33612345678", "FR", "+33612345678", id="e164 stays"),
        pytest.param("+33612345678", "DE", "+33612345678", id="e164 ignores the region"),
        pytest.param("0033612345678", "FR", "+33612345678", id="00 international prefix"),
        pytest.param("0033612345678", "US", "+33612345678", id="00 works whatever the region"),
        pytest.param("004915112345678", "FR", "+4915112345678", id="00 to another country"),
        pytest.param("2025550123", "US", "+12025550123", id="other default region"),
        pytest.param("0612345678", "fr", "+33612345678", id="region case does not matter"),
        pytest.param(" 0612345678 ", "FR", "+33612345678", id="surrounding spaces"),
        pytest.param("00336123", "FR", None, id="too short is invalid"),
        pytest.param("12", "FR", None, id="two digits"),
        pytest.param("", "FR", None, id="empty"),
        pytest.param("06 12 34 56 78", "FR", None, id="inner spaces are not keypad input"),
        pytest.param("1800FLOWERS", "US", None, id="letters are refused"),
        pytest.param("*0612345678", "FR", None, id="star is refused"),
        pytest.param("+0033612345678", "FR", None, id="plus then zero is no country code"),
        pytest.param("0612345678", "XX", None, id="unknown region"),
    ],
)
def test_normalize_destination(digits: str, region: str, expected: str | None) -> None:
    assert normalize_destination(digits, region) == expected


ALLOWLIST = ("+33*", "+32*")


@pytest.mark.parametrize(
    ("number", "patterns", "expected"),
    [
        pytest.param("+33612345678", ALLOWLIST, True, id="inside the allowlist"),
        pytest.param("+3212345678", ALLOWLIST, True, id="second pattern"),
        pytest.param("+4915112345678", ALLOWLIST, False, id="outside the allowlist"),
        pytest.param("+33612345678", (), False, id="empty allowlist allows nothing"),
        pytest.param("+33612345678", ("+33612345678",), True, id="exact number"),
        pytest.param("+33612345679", ("+3361234567?",), True, id="single character wildcard"),
        pytest.param("0612345678", ("*",), False, id="not e164 is refused"),
        pytest.param("+33612345678@evil", ("*",), False, id="dial string fragment refused"),
        pytest.param("+33612345678", ("*",), True, id="catch all pattern"),
    ],
)
def test_allowed_external(number: str, patterns: Sequence[str], expected: bool) -> None:
    assert allowed_external(number, patterns) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0612345678", True),
        ("+33612345678", True),
        ("*123*#", True),
        ("", False),
        ("101&PJSIP/102", False),
        ("1@provider", False),
        ("1,2", False),
        ("12 ", False),
        ("abc", False),
        ("٣", False),
    ],
)
def test_is_safe_dial_token(text: str, expected: bool) -> None:
    assert is_safe_dial_token(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("+33185000000", True), ("+1", False), ("33185000000", False), ("+0185000000", False)],
)
def test_is_e164(text: str, expected: bool) -> None:
    assert is_e164(text) is expected


@pytest.mark.parametrize(
    ("allowed", "employee", "expected"),
    [
        pytest.param("all", "anna", True, id="all allows everyone"),
        pytest.param(["anna", "boris"], "anna", True, id="listed"),
        pytest.param(["boris"], "anna", False, id="not listed"),
        pytest.param([], "anna", False, id="empty list allows nobody"),
        pytest.param("anna", "anna", True, id="single id string"),
        pytest.param("anna", "ann", False, id="never a substring test"),
    ],
)
def test_employee_may_use(allowed: str | list[str], employee: str, expected: bool) -> None:
    assert employee_may_use(allowed, employee) is expected
