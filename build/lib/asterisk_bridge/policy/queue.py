"""Queue member selection: who rings, together with whom, and in which order.

The call engine owns time and channels; this module only turns (members, distribution,
who is available, the round-robin cursor) into rounds of members to ring. The engine
rings round after round for `ring_time` each, and when the rounds are used up it asks
again, with fresh availability, until `max_wait` (see `ring_budget`).

Cursor, for `evenly` only: an index into `members` (taken modulo its length, so it stays
valid when a reload shortens the list) of the member to try first on the next call. The
store keeps it per queue so that round-robin spans calls, nodes and restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from .types import Distribution as Distribution
from .types import Workday as Workday


def workday_of(state: str | None) -> Workday | None:
    """A stored workday state as the enum; None for never started or unknown text."""
    try:
        return Workday(state) if state is not None else None
    except ValueError:
        return None


def may_ring(*, workday: Workday | None, on_call: bool, skip_absent: bool) -> bool:
    """Whether an employee can be rung now, as a queue member or a direct target.

    Someone already on a call is never rung (a second call would only be missed), and
    with `skip_absent_employees` only a started, unpaused workday counts as present;
    None (never started) is absent, as SPEC section 3 says.
    """
    if on_call:
        return False
    return not skip_absent or workday is Workday.WORKING


def _as_predicate(available: Callable[[str], bool] | Collection[str]) -> Callable[[str], bool]:
    if callable(available):
        return available
    return available.__contains__


def _unique(members: Sequence[str]) -> list[str]:
    """Members without repeats (first occurrence kept): ringing a phone twice at once is
    never meant, even if a config lists someone twice."""
    return list(dict.fromkeys(members))


def ring_rounds(
    members: Sequence[str],
    distribution: Distribution | str,
    *,
    available: Callable[[str], bool] | Collection[str],
    cursor: int,
) -> tuple[list[list[str]], int]:
    """The rounds to ring, in order, and the cursor to store for the next call.

    Each round is the list of members rung together: one member per round for `evenly`
    and `in_order`, one round of every available member for `all_at_once`. Unavailable
    members (`available` says no: absent, or already on a call) are left out; when nobody
    is available there are no rounds and the cursor is returned unchanged.

    * `in_order`: members in config order; the cursor is returned unchanged.
    * `all_at_once`: a single round; the cursor is returned unchanged.
    * `evenly`: members rotated to start at `cursor`; the new cursor points just after
      the member rung first, so the next call starts with the next member. Store it when
      the call starts ringing, not when it ends, so concurrent calls start on different
      members. Within one call, the next cycle (after every round went unanswered) passes
      the cursor returned by the previous cycle, so the call's first ring moves on too.

    Duplicate member ids are rung once; the cursor indexes the list without them.
    """
    mode = Distribution(distribution)
    is_available = _as_predicate(available)
    roster = _unique(members)
    if not roster:
        return [], cursor
    if mode is Distribution.ALL_AT_ONCE:
        together = [m for m in roster if is_available(m)]
        return ([together] if together else []), cursor
    if mode is Distribution.IN_ORDER:
        return [[m] for m in roster if is_available(m)], cursor
    start = cursor % len(roster)
    order = [(i % len(roster), roster[i % len(roster)]) for i in range(start, start + len(roster))]
    picked = [(i, m) for i, m in order if is_available(m)]
    if not picked:
        return [], cursor
    return [[m] for _, m in picked], (picked[0][0] + 1) % len(roster)


def ring_budget(*, ring_time: float, max_wait: float, waited: float) -> float:
    """Seconds the next round may ring: `ring_time`, cut short so `max_wait` holds.

    0 means the wait is over and the queue's fallback applies now; a caller is never
    held past `max_wait` just because a round had started.
    """
    return max(0.0, min(float(ring_time), float(max_wait) - float(waited)))
