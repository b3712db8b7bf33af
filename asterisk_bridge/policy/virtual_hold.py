"""Virtual hold (SPEC section 9): a queue caller may hang up and be called back without
losing their place in the line.

Pure: the call engine (calls/virtual_hold.py) owns the clock, the store and the channels;
this module decides whether the offer is made, when it is repeated, what the caller
hears, and which kept places have come up.

The line of a queue is every caller waiting on the line who is not already ringing
someone, plus every kept place (a callback job that remembers when its caller joined),
in the order they joined. The first N of that line may ring, N being the members free
now; a kept place among them is called back (a free member first, then the caller).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .numbers import allowed_external, is_e164

OFFER_INTERVAL_SECONDS = 60.0
"""After the first offer, it is repeated this often ("once a minute", SPEC section 9)."""

# What the caller hears after "... press": digits 1-9 are the number prompts rendered in
# every language (sounds/render), the other keys have prompts of their own.
_KEY_PROMPTS = {"0": "key-0", "*": "key-star", "#": "key-hash"}


def may_offer(phone: str, allowlist: Sequence[str], *, has_callback: bool) -> bool:
    """Whether the caller is offered a callback at all.

    Only a number numcfg may dial back: E.164 and inside `account.external_allowlist`
    (a withheld or foreign number would make a promise the callback cannot keep). A
    caller who already has a callback pending on this number is not offered another:
    never two callbacks for one caller at once.
    """
    return not has_callback and is_e164(phone) and allowed_external(phone, allowlist)


def next_offer_at(*, after: float, last_offer: float | None) -> float:
    """Seconds of waiting at which the next offer is due: `after` for the first, then a
    minute after the last one (`last_offer`: the wait when it came due). Counting from
    the last offer, not from `after`, a caller who spent minutes ringing members hears
    the offer once when she is back, not once per minute missed."""
    if last_offer is None:
        return float(after)
    return float(last_offer) + OFFER_INTERVAL_SECONDS


def offer_due(*, waited: float, after: float, last_offer: float | None) -> bool:
    return waited >= next_offer_at(after=after, last_offer=last_offer)


def pressed(digits: str, key: str) -> bool:
    """Whether the caller pressed the virtual-hold key among the digits typed since the
    first offer (other keys are ignored)."""
    return bool(key) and key in digits


def key_prompt(key: str) -> str:
    """The prompt that says `key` after "to be called back ... press"."""
    if key in _KEY_PROMPTS:
        return _KEY_PROMPTS[key]
    if len(key) == 1 and key.isdigit():
        return f"number-{key}"
    raise ValueError(f"not a keypad key: {key!r}")


@dataclass(frozen=True, slots=True)
class Place:
    """One entry of a queue's line: a caller on the line (`held` False) or a kept place
    (`held` True, `ident` its callback job)."""

    joined_at: datetime
    held: bool
    ident: str


def held_ahead(joined_at: datetime, held: Iterable[datetime]) -> int:
    """How many kept places joined the line before a caller who joined at `joined_at`:
    they count as callers waiting ahead of her."""
    return sum(1 for other in held if other < joined_at)


def due_places(line: Iterable[Place], available: int) -> list[Place]:
    """The kept places whose turn it is, first come first.

    The line is taken in arrival order (ties broken by ident, so every node agrees); its
    first `available` entries may ring now, and the kept places among them are due. A
    caller on the line who joined earlier keeps her turn before a kept place.
    """
    if available <= 0:
        return []
    ordered = sorted(line, key=lambda place: (place.joined_at, place.ident))
    return [place for place in ordered[:available] if place.held]
