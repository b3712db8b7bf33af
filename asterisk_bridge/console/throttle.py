"""Failed logins slow down the next attempts, per user name and per client address.

The first few mistakes cost nothing (typos); after that each attempt waits twice as long
as the one before, up to a cap, until a window passes without failures. Waiting rather
than locking out: an attacker cannot lock a real user out, only be slowed to a crawl.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

FREE_FAILURES: Final = 3
FIRST_DELAY_SECONDS: Final = 1.0
MAX_DELAY_SECONDS: Final = 30.0
# Failures older than this are forgotten.
WINDOW_SECONDS: Final = 15 * 60.0
# Bound on the keys remembered (every guessed name is one): the oldest go first.
MAX_KEYS: Final = 100_000


def delay_for(failures: int) -> float:
    """Seconds the next attempt waits after `failures` recent failures."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(FIRST_DELAY_SECONDS * 2 ** (failures - FREE_FAILURES), MAX_DELAY_SECONDS)


class LoginThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, list[float]] = {}

    def _recent(self, key: str) -> list[float]:
        cutoff = self._clock() - WINDOW_SECONDS
        times = [t for t in self._failures.get(key, []) if t >= cutoff]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def delay(self, *keys: str) -> float:
        return max((delay_for(len(self._recent(k))) for k in keys), default=0.0)

    def failed(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            self._failures.setdefault(key, []).append(now)
        while len(self._failures) > MAX_KEYS:
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, user_key: str) -> None:
        self._failures.pop(user_key, None)
