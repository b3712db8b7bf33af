"""When a background worker looks at the store again (issue 15: an idle numcfg's CPU).

Each look at the store is a thread hop and a transaction, about 1-2 ms of CPU: polled
every couple of seconds by three workers, that was most of an idle numcfg's CPU. So the
workers sleep until there is a reason to look:

- work this process queues wakes its worker at once (`Wakeup.set`, called by whatever
  queued it: the journal, the API, a finished attempt);
- work whose time is known is looked for at that time (a retry's `due_at`, another
  node's `lease_until`: the store says which comes first, `next_due`);
- what only another process can add (another node, the CLI) is found by a fallback scan
  every `SCANS_PER_LEASE`-th of `jobs.lease`: a new job of another node, which that node
  itself normally takes at once, waits at most that long here.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Final

# Fallback scans per `jobs.lease` (60 s by default: one every 15 s).
SCANS_PER_LEASE: Final = 4
# A worker never sleeps less than this between two looks (a lease that ran out a moment
# ago, a clock a little behind the store's): no busy loop on a job that is almost due.
MIN_WAIT_SECONDS: Final = 0.05


def fallback_seconds(lease: float, *, at_most: float) -> float:
    """How long a worker sleeps when it knows of nothing due."""
    return max(MIN_WAIT_SECONDS, min(at_most, lease / SCANS_PER_LEASE))


def seconds_until(next_due: datetime | None, now: datetime, fallback: float) -> float:
    """Sleep until `next_due` (the earliest time a known job becomes due), but never
    longer than `fallback`."""
    if next_due is None:
        return fallback
    return max(MIN_WAIT_SECONDS, min(fallback, (next_due - now).total_seconds()))


class Wakeup:
    """A worker's alarm clock: `set` by code of this process that queued work for it
    (from the event loop's thread), `wait`ed on with a deadline by the worker."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Until `set` or `timeout` seconds; True when woken. A `set` that came since the
        last wait (while the worker was looking at the store) returns at once: no wake-up
        is lost between the look and the sleep."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()
        # Read after the deadline too: a `set` in the same loop turn as the timeout counts
        # (the worker looks at the store next either way, so clearing loses nothing).
        woken = self._event.is_set()
        self._event.clear()
        return woken
