"""Pure lead rules of a number's `crm:` settings (no I/O), tested by tables."""

from __future__ import annotations

from collections.abc import Iterable

import phonenumbers

from asterisk_bridge.policy.numbers import is_e164, normalize_destination


def wants_lead(create_lead: str, direction: str) -> bool:
    """Whether `create_lead` (incoming|outgoing|both|never) covers a call of `direction`.

    A callback is numcfg calling the client back: an outgoing call for the lead rules.
    """
    side = "incoming" if direction == "incoming" else "outgoing"
    return create_lead == "both" or create_lead == side


def is_exception(phone: str, exceptions: Iterable[str]) -> bool:
    return phone in set(exceptions)


def region_of(e164: str | None) -> str | None:
    """The ISO region of an E.164 number ("+33..." -> "FR"), the default for national input."""
    if not e164:
        return None
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return None
    # "001" is phonenumbers' code for non-geographic numbers, no use as a default region.
    return region if region and region.isalpha() else None


def to_e164(phone: str, region: str | None) -> str | None:
    """The client's number as E.164, or None (anonymous, garbage, national without region)."""
    text = (phone or "").strip()
    if region:
        return normalize_destination(text, region)
    return text if is_e164(text) else None
