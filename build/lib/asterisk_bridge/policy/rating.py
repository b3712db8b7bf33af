"""Post-call rating: which key presses count as a rating (SPEC section 4, step 10)."""

from __future__ import annotations

LOWEST_RATING = 1
HIGHEST_RATING = 5


def parse_rating(digit: str) -> int | None:
    """The rating 1-5 for a single key press, or None for anything else.

    Exactly one key counts: "0", "6"-"9", "*", "#" or several keys are not a rating,
    so the caller is not credited with a score they did not choose.
    """
    if len(digit) != 1 or not ("0" <= digit <= "9"):
        return None
    value = int(digit)
    return value if LOWEST_RATING <= value <= HIGHEST_RATING else None
