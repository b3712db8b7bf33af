"""Callback jobs: when the next attempt is due and when to give up.

Attempt times are a fixed grid from the job's creation, a pure function of stored
facts, so a restarted service (or another node) computes the same due times and a
restart neither hurries nor delays a callback.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def next_attempt_at(created_at: datetime, attempt_no: int, delay: float | timedelta) -> datetime:
    """When attempt `attempt_no` (1-based) is due: the first at once, then `delay` apart.

    Attempt n is due at `created_at + (n - 1) * delay`; `delay` is the number's
    `callback.delay` in seconds, or a timedelta.
    """
    if attempt_no < 1:
        raise ValueError(f"attempt_no counts from 1, got {attempt_no}")
    step = delay if isinstance(delay, timedelta) else timedelta(seconds=delay)
    if step < timedelta(0):
        raise ValueError("delay cannot be negative")
    return created_at + (attempt_no - 1) * step


def callback_exhausted(attempts_made: int, attempts: int) -> bool:
    """True when `attempts_made` reached the number's `callback.attempts`: stop trying."""
    return attempts_made >= attempts
