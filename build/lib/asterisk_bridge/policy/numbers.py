"""Number rules: outbound prefix selection, E.164 destinations and what may be dialed.

Everything a caller or employee types passes through here before it can reach a dial
string, so the checks are deliberately narrow: keypad symbols only, E.164 only, and an
allowlist that allows nothing unless told otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

import phonenumbers

ALL_EMPLOYEES = "all"
"""`outbound.allowed_employees` value that lets every employee use the number."""

_DIAL_TOKEN = re.compile(r"[0-9+*#]+")
_PREFIX = re.compile(r"[0-9*#]+")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_NATIONAL_OR_INTERNATIONAL = re.compile(r"\+?[0-9]+")

# The international call prefix used across Europe (and by ITU recommendation): "00"
# means "a country code follows", whatever the default region's own habits.
_INTERNATIONAL_PREFIX = "00"


def select_outbound(dialed: str, prefixes: Mapping[str, str]) -> tuple[str, str] | None:
    """The number whose outbound prefix is the longest prefix of `dialed`, and the rest.

    `prefixes` maps number ids to their `outbound.prefix`; empty prefixes are ignored
    (a number without a prefix is not selectable by dialing). The longest match wins so
    that "*12*" and "*123*" can coexist; equal prefixes are rejected at load time, and
    here the smallest number id wins so the answer never depends on mapping order.
    Returns (number_id, rest); `rest` may be empty when only the prefix was dialed, and
    None when no prefix matches.
    """
    best: tuple[int, str, str] | None = None
    for number_id, prefix in sorted(prefixes.items()):
        if prefix and dialed.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), number_id, dialed[len(prefix) :])
    return None if best is None else (best[1], best[2])


def normalize_destination(digits: str, default_region: str) -> str | None:
    """The E.164 form of a dialed destination, or None when it is no valid number.

    National numbers use `default_region` (ISO 3166 alpha-2, e.g. "FR"): "0612345678"
    becomes "+33612345678". "+..." and "00..." are international whatever the region.
    Anything but digits with an optional leading "+" is refused before parsing, because
    phonenumbers would happily turn letters into digits ("1-800-FLOWERS").
    """
    text = digits.strip()
    # "+0..." is no country code; phonenumbers would quietly drop the zeros.
    if not _NATIONAL_OR_INTERNATIONAL.fullmatch(text) or text.startswith("+0"):
        return None
    if text.startswith(_INTERNATIONAL_PREFIX):
        text = "+" + text[len(_INTERNATIONAL_PREFIX) :]
    try:
        parsed = phonenumbers.parse(text, default_region.upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_e164(text: str) -> bool:
    """True for "+" and 2 to 15 digits, the first not 0: the shape E.164 allows."""
    return isinstance(text, str) and _E164.fullmatch(text) is not None


def allowed_external(e164: str, patterns: Sequence[str]) -> bool:
    """True when `e164` matches one of the `external_allowlist` patterns ("+33*").

    Patterns are shell-style (fnmatch, case-sensitive). An empty list allows nothing,
    since the allowlist guards against toll fraud, and anything not E.164 is refused
    outright so a pattern like "*" cannot let a dial-string fragment through.
    """
    return is_e164(e164) and any(fnmatchcase(e164, pattern) for pattern in patterns)


def is_safe_dial_token(text: str) -> bool:
    """True when `text` is non-empty and only keypad symbols and "+" ([0-9+*#]).

    Caller or employee input is interpolated into dial strings ("PJSIP/{number}@..."),
    where "/", "@", "&", "," or "^" would change what Asterisk dials. Only tokens passing
    this check may reach a dial string.
    """
    return isinstance(text, str) and _DIAL_TOKEN.fullmatch(text) is not None


def employee_may_use(number_allowed: str | Sequence[str], employee: str) -> bool:
    """Whether `employee` may call out through a number (`outbound.allowed_employees`).

    "all" allows everyone; otherwise it is a list of employee ids. A single id given as a
    plain string is treated as a one-element list, never tested as a substring
    ("ann" must not be allowed by "anna").
    """
    if isinstance(number_allowed, str):
        return number_allowed in (ALL_EMPLOYEES, employee)
    return employee in number_allowed


def region_of_number(e164: str) -> str | None:
    """The ISO region of an E.164 number ("+33185000000" -> "FR"): national numbers an
    employee dials are read in the country of the line they call out on."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.region_code_for_number(parsed)
