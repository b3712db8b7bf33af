"""Holding a job's lease while working on it (issue 16).

A node that takes a callback or transcription job from the shared store holds it until
its `lease_until`; while the work goes on, `leased()` renews the lease every third of its
length. A node that dies stops renewing, the lease runs out, and another node's claim
takes the job over. The store only lets the holder of the lease finish the job, so the
job is done once even if the first node was only cut off and comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Final

from .store import STORE_FAULTS

log = logging.getLogger("numcfg.jobs")

# Renewals per lease: two may be lost (a slow store, a busy machine) before it runs out.
RENEWALS_PER_LEASE: Final = 3


async def keep_lease(renew: Callable[[], bool], *, lease: float, what: str) -> None:
    """Renew until cancelled; return when the lease is lost (another node holds the job).

    `renew` is a store method (run in a thread) that is True while this node holds it.
    A store fault is not a loss: renewing goes on, and only if the store stays away
    longer than the lease may another node take the job.
    """
    every = lease / RENEWALS_PER_LEASE
    failing = False
    while True:
        await asyncio.sleep(every)
        try:
            held = await asyncio.to_thread(renew)
        except STORE_FAULTS as exc:
            if not failing:
                log.warning("%s: lease not renewed (%s); trying again", what, exc)
            failing = True
            continue
        failing = False
        if not held:
            log.warning("%s: lease lost, another node took the job over", what)
            return


@contextlib.asynccontextmanager
async def leased(renew: Callable[[], bool], *, lease: float, what: str) -> AsyncIterator[None]:
    """Keep the lease renewed for the duration of the block."""
    keeper = asyncio.create_task(keep_lease(renew, lease=lease, what=what), name=f"lease:{what}")
    try:
        yield
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
