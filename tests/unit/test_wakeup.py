"""wakeup.py: how long a job worker sleeps, and that no wake-up is lost."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from asterisk_bridge.wakeup import MIN_WAIT_SECONDS, Wakeup, fallback_seconds, seconds_until

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_the_fallback_is_a_quarter_of_the_lease_within_its_bounds() -> None:
    assert fallback_seconds(60, at_most=60) == 15
    assert fallback_seconds(3, at_most=60) == 0.75
    assert fallback_seconds(3600, at_most=60) == 60  # a long lease: still once a minute
    assert fallback_seconds(0.01, at_most=60) == MIN_WAIT_SECONDS


def test_a_worker_sleeps_until_the_next_due_job_but_no_longer_than_the_fallback() -> None:
    assert seconds_until(None, NOW, 15) == 15
    assert seconds_until(NOW + timedelta(seconds=4), NOW, 15) == 4
    assert seconds_until(NOW + timedelta(minutes=5), NOW, 15) == 15
    # Overdue (another node's lease ran out a moment ago): a look soon, not a busy loop.
    assert seconds_until(NOW - timedelta(seconds=3), NOW, 15) == MIN_WAIT_SECONDS


async def test_a_wake_up_set_while_the_worker_looked_returns_at_once() -> None:
    wakeup = Wakeup()
    wakeup.set()  # queued while the worker was reading the store
    started = time.monotonic()
    assert await wakeup.wait(10) is True
    assert time.monotonic() - started < 0.1
    assert await wakeup.wait(0.05) is False  # consumed: the next wait sleeps


async def test_a_wake_up_ends_the_sleep() -> None:
    wakeup = Wakeup()
    asyncio.get_running_loop().call_later(0.05, wakeup.set)
    started = time.monotonic()
    assert await wakeup.wait(10) is True
    assert time.monotonic() - started < 1
