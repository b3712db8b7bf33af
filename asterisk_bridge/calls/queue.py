"""Queue groups: callers wait with hold music, available members ring by distribution,
first come first served, one queue call per employee, `max_wait` then the fallback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..ari.errors import AriError
from ..config.schema import Queue
from ..policy.queue import may_ring, ring_budget, workday_of
from ..policy.route import Outcome
from ..policy.types import Workday
from .core.call import Call
from .core.connect import RingOutcome, ring, ring_many
from .core.employees import Reach, talk
from .core.rotation import rounds_to_ring
from .virtual_hold import HoldOffer, Offer, kept_places_ahead

log = logging.getLogger("numcfg.calls")

# Employees' workday can change from another process (CLI, API, another node) without
# an event reaching this one: waiting callers re-check at this pace. It is a timer per
# waiting call, not a poll of Asterisk.
RECHECK_SECONDS = 3.0
# announce_position: on entering the queue, then this often while waiting (beyond the
# hosted service's own behaviour; app_queue's default period is similar).
ANNOUNCE_INTERVAL_SECONDS = 30.0
# Positions with a rendered number prompt in every language (sounds/render's
# POSITION_NUMBERS).
POSITION_PROMPTS = 20
# workdays.reason of an employee numcfg paused (GET /api/employees shows it).
AUTO_PAUSE = "auto"
# A ring round shorter than this rang nobody (refused at once): wait before the next.
MIN_ROUND_SECONDS = 1.0
# Waits shorter than this are not worth a timer (the next pass would come at once).
MIN_WAIT_SECONDS = 0.05


async def _wait_for_change(
    call: Call,
    state: QueueState,
    timeout: float,
    also: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Until the line changes, the caller hangs up, `also` returns, or `timeout` passes."""

    async def changed() -> None:
        async with state.changed:
            await state.changed.wait()

    waits = {
        asyncio.ensure_future(changed()),
        asyncio.ensure_future(call.inbox.gone.wait()),
    }
    if also is not None:
        waits.add(asyncio.ensure_future(also()))
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


@dataclass(eq=False)
class Waiter:
    call: Call
    ringing: bool = False
    # When the caller joined the line (monotonic): the console's board shows the wait.
    joined: float = field(default_factory=time.monotonic)
    # The same moment on the wall clock: kept places (virtual hold) are ordered against
    # callers on the line by it, across restarts and nodes.
    joined_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class QueueState:
    """Callers waiting in one queue on this node, in arrival order."""

    queue_id: str = ""
    waiters: list[Waiter] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def turn(self, waiter: Waiter) -> int:
        """Position among callers not already ringing someone: 0 is next in line."""
        idle = [w for w in self.waiters if not w.ringing]
        return idle.index(waiter) if waiter in idle else 0


def queue_state(call: Call, queue_id: str) -> QueueState:
    """This node's waiting line for `queue_id` (kept by the app, shared by its calls)."""
    return call.services.queues.setdefault(queue_id, QueueState(queue_id=queue_id))


async def run_queue(call: Call, queue_id: str) -> Outcome:
    """Wait in the queue until a member answers and the conversation is over (TALKED),
    the caller leaves (CALLER_GONE) or `max_wait` passes (NO_ANSWER: the route's
    fallback follows, with the hold music stopped)."""
    queue = call.config.queues[queue_id]
    number = call.config.numbers.get(call.record.number or "")
    skip_absent = number.routing.skip_absent_employees if number else True
    call.step(f"queue:{queue_id}")
    if not await call.answer():
        return Outcome.CALLER_GONE
    state = queue_state(call, queue_id)
    waiter = Waiter(call)
    state.waiters.append(waiter)
    waiting = call.services.metrics.queue_waiting.labels(queue=queue_id)
    waiting.set(len(state.waiters))
    started = time.monotonic()
    next_announce = started if queue.announce_position else float("inf")
    hold = HoldOffer.for_caller(call, queue_id, queue, waiter.joined_at)
    moh_on = await _moh(call, True)
    try:
        while not call.hung_up:
            waited = time.monotonic() - started
            if waited >= queue.max_wait:
                break
            if time.monotonic() >= next_announce:
                await _announce_position(call, state, waiter)
                next_announce = time.monotonic() + ANNOUNCE_INTERVAL_SECONDS
                continue
            # One read of who is free per pass: it decides both whether it is our turn
            # and whom to ring.
            available = await _available_members(call, queue.members, skip_absent)
            call.services.metrics.queue_available.labels(queue=queue_id).set(len(available))
            # Kept places (virtual hold) that joined before us wait ahead of us.
            ahead = state.turn(waiter) + kept_places_ahead(call, queue_id, waiter.joined_at)
            if ahead < len(available):
                round_started = time.monotonic()
                reach = await _ring_round(call, queue_id, queue, available, waited, waiter, state)
                if reach is Reach.TALKED:
                    return Outcome.TALKED
                if reach is Reach.CALLER_GONE or call.hung_up:
                    return Outcome.CALLER_GONE
                if not moh_on:
                    moh_on = await _moh(call, True)
                if time.monotonic() - round_started >= MIN_ROUND_SECONDS:
                    continue
                # A round that ended at once (every leg refused on the spot) is retried
                # after the usual wait, never in a tight loop.
            if hold is not None:  # virtual hold (SPEC section 9), while it is not our turn
                offer = await hold.poll(waited)
                if offer is Offer.REQUESTED:
                    return Outcome.CALLBACK_REQUESTED
                if offer is Offer.OFFERED:
                    moh_on = not call.hung_up and await _moh(call, True)
                    continue
            # Not our turn or nobody free: wait for a change, or re-check shortly.
            remaining = queue.max_wait - (time.monotonic() - started)
            until_announce = next_announce - time.monotonic()
            until_offer = hold.until_next(time.monotonic() - started) if hold else remaining
            await _wait_for_change(
                call,
                state,
                max(MIN_WAIT_SECONDS, min(RECHECK_SECONDS, remaining, until_announce, until_offer)),
                also=hold.key_pressed if hold else None,
            )
    finally:
        if waiter in state.waiters:
            state.waiters.remove(waiter)
        waiting.set(len(state.waiters))
        call.services.metrics.queue_wait.labels(queue=queue_id).observe(time.monotonic() - started)
        await state.notify()
    if call.hung_up:
        return Outcome.CALLER_GONE
    await _moh(call, False)
    log.info("call %s: queue %s max_wait reached", call.record.id, queue_id)
    return Outcome.NO_ANSWER


async def _announce_position(call: Call, state: QueueState, waiter: Waiter) -> None:
    """ "You are caller number N" (N counts the callers ahead, plus one). A playback
    suspends the hold music and Asterisk does not resume it: restart it after."""
    position = state.waiters.index(waiter) + 1
    await call.play_prompt("queue-position")
    # In the number's language (sounds/render speaks 1..POSITION_PROMPTS in each); a
    # longer line falls back to Asterisk's own digits.
    if position <= POSITION_PROMPTS:
        await call.play_prompt(f"number-{position}")
    else:
        await call.play(f"number:{position}")
    if not call.hung_up:
        await _moh(call, True)


async def _moh(call: Call, on: bool) -> bool:
    with contextlib.suppress(AriError):
        if on:
            await call.client.start_moh(call.channel_id, await call.moh_class())
            return True
        await call.client.stop_moh(call.channel_id)
    return False


async def _available_members(call: Call, members: list[str], skip_absent: bool) -> list[str]:
    """Members who may ring now: working (when absent ones are skipped) and not on a call."""
    busy = await call.services.claims.busy()
    workdays: dict[str, str] = {}
    if skip_absent:
        workdays = await call.services.workdays()
    return [
        m
        for m in members
        if may_ring(workday=workday_of(workdays.get(m)), on_call=m in busy, skip_absent=skip_absent)
    ]


async def _ring_round(
    call: Call,
    queue_id: str,
    queue: Queue,
    available: list[str],
    waited: float,
    waiter: Waiter,
    state: QueueState,
) -> Reach:
    """One pass over the `available` members in distribution order until one answers."""
    rounds = await rounds_to_ring(call.services, queue_id, queue, available)
    for members in rounds:
        budget = ring_budget(ring_time=queue.ring_time, max_wait=queue.max_wait, waited=waited)
        if budget <= 0 or call.hung_up:
            return Reach.NOT_REACHED
        round_started = time.monotonic()
        reach = await _ring_together(call, members, budget, waiter, state)
        if reach is not Reach.NOT_REACHED:
            return reach
        waited += time.monotonic() - round_started
    return Reach.NOT_REACHED


async def _ring_together(
    call: Call, members: list[str], ring_time: float, waiter: Waiter, state: QueueState
) -> Reach:
    """Ring `members` at once (one for evenly/in_order); the first to answer wins."""
    claimed = []
    for member in members:
        if await call.services.claims.claim(member, call.record.id):
            claimed.append(member)
    if not claimed:
        return Reach.NOT_REACHED
    waiter.ringing = True
    await state.notify()
    winner: str | None = None
    ringing = list(claimed)
    for observer in call.services.observers:
        await observer.ringing(call, ringing)
    try:
        if len(claimed) == 1:
            member = claimed[0]
            endpoint = call.config.employees[member].endpoint
            outcome, leg = await ring(
                call,
                endpoint,
                ring_time=ring_time,
                caller_id=call.record.caller or None,
                ringback=False,
            )
            if outcome is RingOutcome.CALLER_HUNG_UP:
                return Reach.CALLER_GONE
            if leg is None:
                if outcome is RingOutcome.NO_ANSWER:
                    await _rang_out(call, state.queue_id, {member})
                return Reach.NOT_REACHED
            winner = member
        else:
            rang_out: set[str] = set()
            winner_leg = await ring_many(
                call,
                {m: call.config.employees[m].endpoint for m in claimed},
                ring_time=ring_time,
                rang_out=rang_out,
            )
            if winner_leg is None:
                await _rang_out(call, state.queue_id, rang_out)
                return Reach.CALLER_GONE if call.hung_up else Reach.NOT_REACHED
            winner, leg = winner_leg
        call.services.runtime.unanswered.pop(winner, None)
        # The others' cards close as soon as one answers, not when the talk is over.
        await _not_taken(call, ringing, winner)
        ringing = []
        await _moh(call, False)
        waiter.ringing = False
        if waiter in state.waiters:
            state.waiters.remove(waiter)
        call.services.metrics.queue_waiting.labels(queue=state.queue_id).set(len(state.waiters))
        await state.notify()
        for member in claimed:
            if member != winner:
                await call.services.claims.release(member, call.record.id)
        claimed = [winner]
        await talk(call, leg, employee_id=winner, step=f"employee:{winner}")
        return Reach.TALKED
    finally:
        waiter.ringing = False
        for member in claimed:
            await call.services.claims.release(member, call.record.id)
        await state.notify()
        await _not_taken(call, ringing, winner)


async def _rang_out(call: Call, queue_id: str, members: set[str]) -> None:
    """Members who let a queue call ring out; `auto_pause_after` in a row pauses one
    (workday paused, reason auto) until she resumes (SPEC section 9)."""
    limit = call.config.queues[queue_id].auto_pause_after
    if limit is None:
        return
    streaks = call.services.runtime.unanswered
    for member in sorted(members):
        streaks[member] = streaks.get(member, 0) + 1
        if streaks[member] < limit:
            continue
        streaks.pop(member, None)
        store = call.services.store
        await call.services.db_or(
            None, store.people.set_workday, member, Workday.PAUSED, reason=AUTO_PAUSE
        )
        call.services.runtime.last_workdays[member] = Workday.PAUSED
        call.services.metrics.auto_pauses.labels(queue=queue_id, employee=member).inc()
        call.step(f"auto_pause:{member}")
        log.info(
            "call %s: %s paused after %d unanswered queue calls", call.record.id, member, limit
        )


async def _not_taken(call: Call, ringing: list[str], winner: str | None) -> None:
    not_taken = [m for m in ringing if m != winner]
    if not_taken:
        for observer in call.services.observers:
            await observer.not_taken(call, not_taken)
