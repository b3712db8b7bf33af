"""Virtual hold (SPEC section 9): a waiting queue caller hangs up and is called back
without losing their place in the line.

- `HoldOffer` lives inside one caller's wait (calls/queue.py `run_queue`): after
  `virtual_hold.after` seconds, and then once a minute, it offers the callback; when the
  caller presses the key it stores a *kept place* (a callback job with the queue and the
  time the caller joined it), confirms, and ends the call.
- `held_worker` runs for the life of the app: it reads the kept places from the store,
  and when one comes up in its line (policy/virtual_hold.due_places: callers on the line
  and kept places in the order they joined) it claims a free member and the job, and
  runs the callback (calls/callback.py: the member is rung first, then the caller).
- `kept_places_ahead` tells a caller on the line how many kept places joined before her: they
  are served first, as a caller waiting ahead of her would be.

The place lives in the store, not in this process: a restarted node (or another node on
a shared store) reads it back and still honours it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from ..ari.events import ChannelDtmfReceived
from ..ari.media import Status
from ..config.schema import Callback, Queue, VirtualHold
from ..policy.queue import may_ring, workday_of
from ..policy.types import Direction
from ..policy.virtual_hold import (
    Place,
    due_places,
    held_ahead,
    key_prompt,
    may_offer,
    next_offer_at,
    offer_due,
    pressed,
)
from ..store import STORE_FAULTS, CallbackJob
from ..wakeup import fallback_seconds
from .callback import run_attempt
from .core.call import Call
from .core.context import Services
from .core.rotation import rounds_to_ring

if TYPE_CHECKING:
    from .queue import QueueState

log = logging.getLogger("numcfg.calls")

# While there are kept places, they are read from the store this often: the longest a
# free member waits before a kept place's callback starts, and one indexed query per tick.
HELD_SCAN_SECONDS = 2.0
# With none (the last read found none), nothing can come up: a place this node keeps
# wakes the worker (Runtime.held_queued), one kept on another node is read every quarter
# of jobs.lease (wakeup.py), and at least this often. (Reading every 2 s for nothing was a
# quarter of an idle numcfg's CPU, issue 15.)
HELD_IDLE_SCAN_SECONDS = 60.0
# What a job made by virtual hold says in `reason` (GET /api/callbacks).
REASON = "virtual_hold"
OFFER_PROMPT = "virtual-hold-offer"  # "To be called back without losing your place, press"
CONFIRM_PROMPT = "virtual-hold-confirm"  # "We will call you back when it is your turn."
# Settings of a number without `callback:` (the same defaults as a callback asked by hand).
DEFAULT_CALLBACK = Callback()


class Offer(Enum):
    """What a poll of the offer did."""

    NOTHING = "nothing"  # not due, or not made
    OFFERED = "offered"  # the offer was played: the hold music must be restarted
    REQUESTED = "requested"  # the caller took it: the place is kept and the call ended


class HoldOffer:
    """The callback offer made to one caller while she waits in `queue_id`."""

    def __init__(
        self, call: Call, queue_id: str, settings: VirtualHold, joined_at: datetime
    ) -> None:
        self.call = call
        self.queue_id = queue_id
        self.settings = settings
        self.joined_at = joined_at
        self.last_due: float | None = None  # the wait when the last offer came due
        self.made = 0  # offers actually played

    @classmethod
    def for_caller(
        cls, call: Call, queue_id: str, queue: Queue, joined_at: datetime
    ) -> HoldOffer | None:
        """The offer for a caller entering `queue_id`; None when the queue has no
        virtual hold, or the call is not a client's incoming call on a number."""
        if queue.virtual_hold is None or call.record.direction != Direction.INCOMING:
            return None
        if (call.record.number or "") not in call.config.numbers:
            return None
        return cls(call, queue_id, queue.virtual_hold, joined_at)

    def until_next(self, waited: float) -> float:
        """Seconds until the next offer is due (the wait between passes ends then)."""
        return next_offer_at(after=self.settings.after, last_offer=self.last_due) - waited

    async def key_pressed(self) -> None:
        """Returns when the caller presses a key after the first offer (never before:
        a key pressed before she heard the offer is no answer to it)."""
        if not self.made:
            await asyncio.Event().wait()
        inbox = self.call.inbox
        # Digits already typed are in inbox.digits; the subscription is opened with no
        # await in between, so none can slip past.
        if inbox.digits:
            return
        with inbox.watch(self.call.channel_id, types=(ChannelDtmfReceived,)) as events:
            while not inbox.digits and not inbox.hung_up:
                await events.next()

    async def poll(self, waited: float) -> Offer:
        """Once per pass of the caller's wait: the key pressed since the last offer, or
        the offer when it is due."""
        if self.made and pressed(self.call.inbox.take_digits(), self.settings.key):
            return await self._request()
        if not offer_due(waited=waited, after=self.settings.after, last_offer=self.last_due):
            return Offer.NOTHING
        self.last_due = waited  # made or not (no callback possible), due again in a minute
        if not await self._may_offer():
            return Offer.NOTHING
        if not self.made:
            self.call.inbox.take_digits()  # typed before the first offer: not an answer
        self.made += 1
        result = await self.call.play_prompt(OFFER_PROMPT, interrupt_on_digit=True)
        if result.status is Status.FINISHED:
            await self.call.play_prompt(key_prompt(self.settings.key), interrupt_on_digit=True)
        if pressed(self.call.inbox.take_digits(), self.settings.key):
            return await self._request()
        return Offer.OFFERED

    async def _may_offer(self) -> bool:
        call = self.call
        phone = call.record.caller
        allowlist = call.config.account.external_allowlist
        allowed = may_offer(phone, allowlist, has_callback=False)
        if allowed:  # the store is asked only about a number that may be called back
            # A store that cannot say is a store that could not keep the place either.
            has_callback = await call.services.db_or(
                True, call.services.store.callbacks.has_active, call.record.number, phone
            )
            allowed = may_offer(phone, allowlist, has_callback=has_callback)
        if not allowed:
            log.info("call %s: no virtual-hold offer to %r", call.record.id, phone)
        return allowed

    async def _request(self) -> Offer:
        """Keep the caller's place in the store, confirm, end the call."""
        call = self.call
        services = call.services
        settings = call.config.numbers[call.record.number].callback or DEFAULT_CALLBACK
        try:
            job = await services.db(
                services.store.callbacks.add_for_call,
                number=call.record.number,
                phone=call.record.caller,
                attempts=settings.attempts,
                delay=settings.delay,
                due_at=services.clock(),
                reason=REASON,
                call_id=call.record.id,
                queue=self.queue_id,
                joined_at=self.joined_at,
            )
        except STORE_FAULTS as exc:
            # The place cannot be kept: the caller stays on the line, and is offered
            # again a minute later.
            log.warning("call %s: virtual hold not stored: %s", call.record.id, exc)
            return Offer.NOTHING
        if job is not None:
            # In the line before the caller leaves it: nobody behind her moves ahead.
            services.runtime.held.setdefault(self.queue_id, {})[job.id] = self.joined_at
            log.info(
                "call %s: place kept in %s as callback %s", call.record.id, self.queue_id, job.id
            )
        else:
            log.info("call %s: the caller already has a callback", call.record.id)
        call.step("virtual_hold")
        await call.play_prompt(CONFIRM_PROMPT)
        await call.hangup()
        # The kept places are read at the held worker's quicker pace from now on; woken
        # once the caller is gone, so her callback never rings a phone still on this call.
        services.runtime.held_queued.set()
        return Offer.REQUESTED


def kept_places_ahead(call: Call, queue_id: str, joined_at: datetime) -> int:
    """Kept places in `queue_id` whose callers joined before `joined_at`."""
    return held_ahead(joined_at, call.services.runtime.held.get(queue_id, {}).values())


# -- kept places coming up -----------------------------------------------------------------


async def held_worker(services: Services) -> None:
    """Runs for the life of the app; stops taking kept places once the app drains (an
    attempt in progress is tracked in `services.active`, so the drain waits for it)."""
    while not services.draining:
        try:
            await _scan(services)
        except Exception:
            log.exception("virtual hold scan failed")
        if any(services.runtime.held.values()):
            wait = HELD_SCAN_SECONDS
        else:
            lease = services.config_holder.current.jobs.lease
            wait = fallback_seconds(lease, at_most=HELD_IDLE_SCAN_SECONDS)
        await services.runtime.held_queued.wait(wait)


async def _scan(services: Services) -> None:
    known = {(qid, job_id) for qid, places in services.runtime.held.items() for job_id in places}
    jobs: list[CallbackJob] | None = await services.db_or(None, services.store.callbacks.held)
    if jobs is None:
        return  # the store is away: the lines stay as last read
    lines: dict[str, list[CallbackJob]] = {}
    for job in jobs:
        lines.setdefault(job.queue or "", []).append(job)
    await _mirror(services, lines, known)
    config = services.config_holder.current
    for queue_id, queued in lines.items():
        if services.draining:
            return
        queue = config.queues.get(queue_id)
        if queue is None:
            # The queue went away in a reload: its kept places are plain callbacks now.
            for job in queued:
                await _start(services, job, employee_id=None)
            continue
        await _serve_line(services, queue_id, queue, queued)


async def _mirror(
    services: Services, lines: dict[str, list[CallbackJob]], known: set[tuple[str, str]]
) -> None:
    """Make the node's view of the kept places the store's; wake the waiting callers of
    every line that changed (a place ahead of them was served, on any node). A place kept
    by this node while the store was being read (not `known` before it) stays: the read
    may have missed it."""
    held = services.runtime.held
    fresh = {
        qid: {job.id: job.joined_at for job in queued if job.joined_at}
        for qid, queued in lines.items()
    }
    for qid, places in held.items():
        for job_id, joined_at in places.items():
            if (qid, job_id) not in known:
                fresh.setdefault(qid, {}).setdefault(job_id, joined_at)
    changed = {qid for qid in set(held) | set(fresh) if held.get(qid) != fresh.get(qid)}
    held.clear()
    held.update(fresh)
    for queue_id in changed:
        state = services.queues.get(queue_id)
        if state is not None:
            await state.notify()


async def _serve_line(
    services: Services, queue_id: str, queue: Queue, queued: list[CallbackJob]
) -> None:
    """Start the first kept place of the line whose turn it is, with the member the
    queue's distribution would ring next (one per pass: the claim of the member must be
    seen before the next decision)."""
    config = services.config_holder.current
    number = config.numbers.get(queued[0].number)
    skip_absent = number.routing.skip_absent_employees if number else True
    free = await _free_members(services, queue.members, skip_absent)
    state: QueueState | None = services.queues.get(queue_id)
    waiting = [
        Place(w.joined_at, False, w.call.record.id)
        for w in (state.waiters if state is not None else [])
        if not w.ringing
    ]
    line = waiting + [Place(job.joined_at, True, job.id) for job in queued if job.joined_at]
    due = due_places(line, len(free))
    if not due:
        return
    job = next(j for j in queued if j.id == due[0].ident)
    employee_id = await _next_member(services, queue_id, queue, free)
    await _start(services, job, employee_id=employee_id)


async def _next_member(services: Services, queue_id: str, queue: Queue, free: list[str]) -> str:
    """The free member a queue call would ring first (the round-robin cursor moves on for
    `evenly`, as for a caller on the line)."""
    rounds = await rounds_to_ring(services, queue_id, queue, free)
    return rounds[0][0]


async def _free_members(services: Services, members: list[str], skip_absent: bool) -> list[str]:
    """Members who may ring now (the same rule as a queue call's): present when absent
    ones are skipped, and not on a call."""
    busy = await services.claims.busy()
    workdays: dict[str, Any] = {}
    if skip_absent:
        workdays = await services.db_or(
            services.runtime.last_workdays, services.store.people.workdays
        )
    return [
        m
        for m in members
        if may_ring(workday=workday_of(workdays.get(m)), on_call=m in busy, skip_absent=skip_absent)
    ]


async def _start(services: Services, job: CallbackJob, *, employee_id: str | None) -> None:
    """Claim the member (for the callback's record) and the job, then run the attempt
    beside the worker. A node that loses either race leaves the place to the winner."""
    record_id = uuid.uuid4().hex
    if employee_id is not None and not await services.claims.claim(employee_id, record_id):
        return
    claimed = await services.db_or(
        None,
        services.store.callbacks.claim_held,
        job.id,
        node=services.node,
        now=services.clock(),
        lease=services.config_holder.current.jobs.lease,
    )
    if claimed is None:
        if employee_id is not None:
            await services.claims.release(employee_id, record_id)
        return
    services.runtime.held.get(job.queue or "", {}).pop(job.id, None)
    state = services.queues.get(job.queue or "")
    if state is not None:
        await state.notify()  # callers behind the place move up
    log.info("callback %s: its turn in %s came (%s first)", job.id, job.queue, employee_id)
    key = f"callback:{job.id}"
    attempt = asyncio.create_task(
        run_attempt(services, claimed, employee_id=employee_id, record_id=record_id)
    )
    services.active[key] = attempt
    attempt.add_done_callback(lambda _task: services.active.pop(key, None))
