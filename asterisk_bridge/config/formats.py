"""Value formats of the config file, as pure functions.

Each parser raises ValueError with a message meant for the operator (it ends up after
"file:line:col: path:"), so messages say what was expected, not what Python saw.
Schedules are checked with policy.hours' own parsers (config/schema.py), so the
schedule format has exactly one definition.
"""

from __future__ import annotations

import re
import zoneinfo

import phonenumbers

E164_HINT = "expected +<country><number>, e.g. +33185000000"
_E164_SHAPE = re.compile(r"\+[1-9][0-9]{1,14}")
_KEYPAD = re.compile(r"[0-9*#]+")
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_SOUND = re.compile(r"(sound|recording):\S+")


def e164(value: str) -> str:
    """A phone number written the way the dialplan and the trunk use it: +<digits>."""
    if not _E164_SHAPE.fullmatch(value):
        raise ValueError(f"{value!r} is not an E.164 number: {E164_HINT}")
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{value!r} is not an E.164 number: {E164_HINT}") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise ValueError(f"{value!r} is not a possible phone number: {E164_HINT}")
    return value


def keypad(value: str) -> str:
    """Digits an employee can type: 0-9, * and #; never '+' (phones cannot dial it)."""
    if not _KEYPAD.fullmatch(value):
        raise ValueError(f"{value!r} may use only the keypad symbols 0-9, * and #")
    return value


def identifier(value: str) -> str:
    """Ids end up in dialplan extensions and Stasis arguments, where ',' or ';' would break."""
    if not _IDENT.fullmatch(value):
        raise ValueError(
            f"invalid id {value!r}: start with a letter, then letters, digits, '_' or '-'"
        )
    return value


_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


def email_address(value: str) -> str:
    """One plain address (it becomes a To: or From: header: no display name, no list, no
    line break that could add a header)."""
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an email address such as anna@example.com")
    return value


def http_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise ValueError(f"{value!r} is not an http(s) URL, e.g. http://127.0.0.1:8088/ari")
    return value


def listen_address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT, e.g. 127.0.0.1:8090")
    return value


def store_url(value: str) -> str:
    # The store accepts SQLAlchemy URLs of these two families only (SPEC section 1).
    if not value.startswith(("sqlite:", "postgresql:", "postgresql+", "postgres:")):
        raise ValueError(
            f"{value!r} is not a store URL: expected sqlite:///PATH or postgresql://..."
        )
    return value


def allow_pattern(value: str) -> str:
    # Patterns are matched against E.164 numbers, which always start with '+'.
    if not re.fullmatch(r"\+[0-9*?\[\]!-]*", value):
        raise ValueError(f"{value!r} is not a number pattern: expected e.g. +33* or +3225??????")
    return value


def sound_ref(value: str) -> str:
    if not _SOUND.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a sound reference: expected sound:<name> or recording:<name>"
        )
    return value


def timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {value!r} (expected an IANA name like Europe/Paris)"
        ) from exc
    return value
