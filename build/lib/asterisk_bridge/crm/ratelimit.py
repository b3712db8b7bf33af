"""Staying inside a CRM's request limits: a token bucket, retry backoff, request budgets.

Bitrix24 counts requests in a leaky bucket per portal (cloud plans: bursts of 50, then 2 per
second) and answers 503 QUERY_LIMIT_EXCEEDED beyond it. numcfg paces itself with the same
bucket client-side, so it is refused rarely; when it still is (other applications share the
portal's bucket), it retries with backoff. Neither may hold a call up: every request runs
under a RequestBudget, set by CrmService for the operation it guards, and a wait that
cannot end inside that budget fails at once with REASON_RATE_LIMITED.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from .base import REASON_RATE_LIMITED, CrmError

# Tokens background requests leave in the bucket for routing: a call's routing needs up to
# three requests (crm.duplicate.findbycomm, crm.<entity>.get, crm.lead.add), which then
# never queue behind a backlog of journal events. The portal's rate is not reduced: the
# bucket just refills to this level before a background request takes a token.
URGENT_RESERVE = 3
# Retries after "slow down": the first waits about one leak interval of the default plan
# (0.5 s at 2/s), each next one twice as long, never more than the cap.
RETRY_BASE_S = 0.25
RETRY_CAP_S = 8.0
# A guard for budgets long enough to retry for minutes: by then the limit is not transient.
RETRY_MAX_ATTEMPTS = 6


@dataclass(frozen=True)
class RequestBudget:
    """How long the operation running now may take, and whether a call waits for it."""

    deadline: float  # time.monotonic() by which the operation must be over
    urgent: bool  # routing (a caller waits) rather than the background journal

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


# A context variable, not a parameter: the budget belongs to the CrmService operation
# (lookup, call_started, ...) and every REST request that operation makes inherits it,
# without each backend method passing it along.
_BUDGET: ContextVar[RequestBudget | None] = ContextVar("crm_request_budget", default=None)


@contextlib.contextmanager
def request_budget(seconds: float, *, urgent: bool) -> Iterator[RequestBudget]:
    budget = RequestBudget(deadline=time.monotonic() + seconds, urgent=urgent)
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def current_budget() -> RequestBudget | None:
    """The budget of the CRM operation running in this task; None outside CrmService."""
    return _BUDGET.get()


class TokenBucket:
    """`burst` requests at once, then `per_second`; `acquire()` waits for a token.

    Urgent requests (routing) reserve their token and are served before background ones,
    which wait their turn in arrival order and leave URGENT_RESERVE tokens untouched.
    """

    def __init__(self, *, per_second: float, burst: int) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("a token bucket needs per_second > 0 and burst >= 1")
        self.per_second = per_second
        self.burst = burst
        self._tokens = float(burst)
        # time.monotonic, like RequestBudget deadlines (and the event loop's clock).
        self._updated = time.monotonic()
        self._reserve = min(URGENT_RESERVE, burst - 1)
        # asyncio.Lock wakes waiters in FIFO order: background requests keep their order.
        self._background = asyncio.Lock()

    async def acquire(self, *, deadline: float | None = None, urgent: bool = False) -> None:
        """Take a token, waiting for it; CrmError(REASON_RATE_LIMITED) rather than wait
        past `deadline` (a time.monotonic() value; None: wait as long as it takes)."""
        if urgent:
            await self._acquire_urgent(deadline)
            return
        async with self._background:
            while True:
                self._refill()
                if self._tokens >= 1 + self._reserve:
                    self._tokens -= 1
                    return
                wait = (1 + self._reserve - self._tokens) / self.per_second
                self._check(wait, deadline)
                await asyncio.sleep(wait)

    async def _acquire_urgent(self, deadline: float | None) -> None:
        self._refill()
        wait = max(0.0, (1 - self._tokens) / self.per_second)
        self._check(wait, deadline)
        # Reserved now (the count may go negative), so later requests queue behind it.
        self._tokens -= 1
        if wait <= 0:
            return
        try:
            await asyncio.sleep(wait)
        except asyncio.CancelledError:
            self._tokens = min(self.burst, self._tokens + 1)
            raise

    def drain(self) -> None:
        """The CRM said "slow down": whatever we counted, its bucket is full (other
        applications share it), so every request now waits for a fresh token."""
        self._refill()
        self._tokens = min(self._tokens, 0.0)

    def _check(self, wait: float, deadline: float | None) -> None:
        if deadline is not None and time.monotonic() + wait > deadline:
            raise CrmError(
                REASON_RATE_LIMITED,
                f"request budget too short to wait {wait:.2f} s for the CRM rate limit "
                f"({self.per_second:g}/s, bursts of {self.burst})",
            )

    def _refill(self) -> None:
        now = time.monotonic()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.per_second)


class Backoff:
    """Delays between retries of a rate-limited request: exponential, with jitter so that
    requests refused together do not come back together."""

    def __init__(
        self,
        *,
        base: float = RETRY_BASE_S,
        cap: float = RETRY_CAP_S,
        max_attempts: int = RETRY_MAX_ATTEMPTS,
        rng: random.Random | None = None,
    ) -> None:
        self.base = base
        self.cap = cap
        self.max_attempts = max_attempts
        self._rng = rng or random.Random()

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (0 for the first retry)."""
        ceiling = min(self.cap, self.base * 2**retry)
        # "Equal jitter": at least half the ceiling, so a retry never comes back at once.
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    async def wait(self, retry: int, *, deadline: float | None, why: str) -> None:
        """Sleep before retry `retry`; CrmError(REASON_RATE_LIMITED) if retries are used up
        or the wait would end past `deadline`."""
        if retry >= self.max_attempts:
            raise CrmError(REASON_RATE_LIMITED, f"{why}; gave up after {retry} retries")
        delay = self.delay(retry)
        if deadline is not None and time.monotonic() + delay > deadline:
            raise CrmError(REASON_RATE_LIMITED, f"{why}; no time left in the budget to retry")
        await asyncio.sleep(delay)
