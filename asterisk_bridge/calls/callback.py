"""Callbacks (SPEC section 4 step 11): a missed client is called back by a free employee.

A job rings a free employee first; once the employee answers, the client is dialed
through the trunk with the number as caller ID and both are bridged. A failed attempt
is retried `delay` seconds later, up to `attempts` times. Jobs live in the store, so they
survive restarts and are shared (claimed atomically) by several nodes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import Any

from ..ari.errors import AriError
from ..ari.inbox import new_id
from ..lease import leased
from ..policy.numbers import allowed_external, is_e164
from ..policy.queue import may_ring, workday_of
from ..policy.route import wants_callback
from ..policy.types import Direction, Disposition
from ..store import CallbackJob
from ..wakeup import fallback_seconds, seconds_until
from .core.call import Call
from .core.connect import DIAL_GUARD_SECONDS, RingOutcome, await_answer, wait_in_stasis
from .core.context import Runtime, Services
from .core.details import CallRecord
from .core.employees import Reach
from .core.journal import CALLBACK
from .features.crm_journal import call_started
from .inbound.forward import forward

log = logging.getLogger("numcfg.calls")

# The employee's phone rings this long before the attempt counts as failed.
CALLBACK_EMPLOYEE_RING_SECONDS = 20
# A job this node queues wakes the worker at once (Runtime.callbacks_queued), a retry or
# another node's lease that runs out is looked for at its time (CallbackJobs.next_due).
# What only another process adds (another node, `numcfg callback`) is looked for every
# quarter of jobs.lease (wakeup.py), and at least this often. (A fixed 5 s poll cost an
# idle numcfg a store transaction for nothing every time, issue 15.)
CALLBACK_SCAN_SECONDS = 60.0


class WakeOnCallbackQueued:
    """A journal listener (Journal.on_written, registered by app.py): a callback job this
    node queued, once in the store, wakes the worker, which takes it at once rather than
    at the next scan."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == CALLBACK:
            self._runtime.callbacks_queued.set()


async def missed_call_callback(call: Call) -> None:
    """After a missed or abandoned incoming call: queue a callback when the number asks."""
    number = call.config.numbers.get(call.record.number or "")
    phone = call.record.caller
    if number is None or number.callback is None:
        return
    if not wants_callback(call.record.direction, call.record.disposition or ""):
        return
    if not is_e164(phone) or not allowed_external(phone, call.config.account.external_allowlist):
        log.info("call %s: no callback to %r (not an allowed E.164 number)", call.record.id, phone)
        return
    await call.services.journal.add_callback(
        number=call.record.number,
        phone=phone,
        attempts=number.callback.attempts,
        delay=number.callback.delay,
        due_at=call.services.clock(),
        reason=call.record.disposition,
        call_id=call.record.id,
    )


async def callback_worker(services: Services) -> None:
    """Runs for the life of the app: executes due jobs one at a time per node. Stops
    taking jobs once the app drains; an attempt in progress is a call like any other
    (tracked in `services.active`, so the drain waits for it), the worker itself is not."""
    while not services.draining:
        lease = services.config_holder.current.jobs.lease
        now = services.clock()
        next_due: datetime | None = None
        try:
            job, next_due = await services.db(_claim_or_next_due, services, now, lease)
        except Exception:
            log.exception("callback scan failed")
            job = None
        if job is None:
            fallback = fallback_seconds(lease, at_most=CALLBACK_SCAN_SECONDS)
            await services.runtime.callbacks_queued.wait(seconds_until(next_due, now, fallback))
            continue
        if services.draining:
            # SIGTERM came while the claim was in flight: the drain no longer waits for
            # new work, so hand the job back untouched rather than start ringing.
            await services.db(
                services.store.callbacks.give_back, job.id, node=services.node, now=services.clock()
            )
            return
        attempt = asyncio.create_task(run_attempt(services, job))
        key = f"callback:{job.id}"
        services.active[key] = attempt
        try:
            await attempt
        finally:
            services.active.pop(key, None)


def _claim_or_next_due(
    services: Services, now: datetime, lease: float
) -> tuple[CallbackJob | None, datetime | None]:
    """One thread hop: the job claimed, or when the next one becomes due. Read first:
    most looks find nothing due, and a read costs no write transaction (issue 15: the
    fallback scans were most of an idle numcfg's CPU)."""
    jobs = services.store.callbacks
    next_due = jobs.next_due()
    if next_due is None or next_due > now:
        return None, next_due
    job = jobs.claim_due(now, node=services.node, lease=lease)
    return job, None if job is not None else jobs.next_due()


async def run_attempt(
    services: Services,
    job: CallbackJob,
    *,
    employee_id: str | None = None,
    record_id: str | None = None,
) -> None:
    """One attempt of a claimed job, its outcome written to the store. `employee_id`:
    already claimed for `record_id` by the caller (virtual hold), released here."""
    success = False
    lease = services.config_holder.current.jobs.lease

    def renew() -> bool:
        return services.store.callbacks.renew(
            job.id, node=services.node, now=services.clock(), lease=lease
        )

    try:
        # Renewed while the attempt runs: a node that dies mid-attempt stops renewing, and
        # another node takes the job over once the lease runs out (issue 16).
        async with leased(renew, lease=lease, what=f"callback {job.id}"):
            success = await run_callback(
                services, job, employee_id=employee_id, record_id=record_id
            )
    except Exception:
        log.exception("callback %s failed", job.id)
    finally:
        if employee_id is not None and record_id is not None:
            # run_callback releases its own claim; this covers an attempt that ended before
            # it claimed her (the number was removed by a reload).
            await services.claims.release(employee_id, record_id)
        counted = await services.db(
            services.store.callbacks.finish_attempt,
            job.id,
            success=success,
            now=services.clock(),
            node=services.node,
        )
        if not counted:
            log.warning("callback %s: attempt not counted, another node took the job", job.id)
        # A failed attempt is due again `delay` seconds on: the worker sleeps until then.
        services.runtime.callbacks_queued.set()


async def run_callback(
    services: Services,
    job: CallbackJob,
    *,
    employee_id: str | None = None,
    record_id: str | None = None,
) -> bool:
    """One attempt: ring a free employee (`employee_id` when the caller already chose and
    claimed her for `record_id`, as virtual hold does), then the client."""
    config = services.config_holder.current
    number = config.numbers.get(job.number)
    if number is None:
        return False
    if employee_id is None:
        employee_id = await _free_employee(services, config, number, job.queue)
    if employee_id is None:
        log.info("callback %s: no free employee, retry in %ss", job.id, job.delay)
        return False
    leg_id = new_id("cb")
    record = CallRecord(
        id=record_id or uuid.uuid4().hex,
        number=job.number,
        direction=Direction.CALLBACK,
        caller=number.number,
        callee=job.phone,
        callback_of=job.call_id,
    )
    call = Call(services=services, channel_id=leg_id, record=record, config=config)
    # In the CRM's journal as a callback (Bitrix24 TYPE 4), the employee's card up.
    await call_started(call, direction=Direction.CALLBACK, phone=job.phone, employee=employee_id)
    return await employee_then_client(
        services, call, employee_id, job.phone, announce="transfer", what=f"callback {job.id}"
    )


async def employee_then_client(
    services: Services,
    call: Call,
    employee_id: str,
    phone: str,
    *,
    announce: str | None,
    what: str,
    caller_id: str | None = None,
) -> bool:
    """Ring the employee's phone (showing the client's number); once she answers, the
    client through the trunk, and bridge them. True when they talked. Callbacks and
    click-to-call alike; cleans the call up."""
    services.metrics.call_started()
    record = call.record
    leg_id = call.channel_id
    await call.note_progress()
    claimed = await services.claims.claim(employee_id, record.id)
    try:
        if not claimed:
            record.disposition = Disposition.MISSED
            return False
        employee = call.config.employees[employee_id]
        for observer in services.observers:
            await observer.ringing(call, [employee_id])
        with call.inbox.watch(leg_id) as leg_events:
            try:
                # The employee sees the client's number: they know who they are calling.
                await services.client.create_channel(
                    endpoint=employee.endpoint,
                    channel_id=leg_id,
                    app_args="callback",
                    caller_id=phone,
                )
                await wait_in_stasis(call, leg_events, leg_id)
                await services.client.dial(leg_id, timeout=CALLBACK_EMPLOYEE_RING_SECONDS)
            except AriError as exc:
                log.warning("%s: cannot ring %s: %s", what, employee_id, exc)
                record.disposition = Disposition.FAILED
                return False
            outcome = await await_answer(
                call, leg_events, leg_id, CALLBACK_EMPLOYEE_RING_SECONDS + DIAL_GUARD_SECONDS
            )
        if outcome is not RingOutcome.ANSWERED:
            for observer in services.observers:
                await observer.not_taken(call, [employee_id])
            record.disposition = Disposition.MISSED
            return False
        call.answered = True
        record.employee = employee_id
        call.step(f"employee:{employee_id}")
        if announce:
            await call.play_prompt(announce)
        await call.recorder.plan()
        reach = await forward(call, phone, step=f"forward:{phone}", caller_id=caller_id)
        if reach is Reach.TALKED:
            record.employee = employee_id
            record.disposition = Disposition.ANSWERED
            return True
        record.disposition = Disposition.MISSED
        return False
    finally:
        if claimed:
            await services.claims.release(employee_id, record.id)
        await call.cleanup()


async def _free_employee(
    services: Services, config: Any, number: Any, queue_id: str | None = None
) -> str | None:
    """A working, free employee: the members of the job's queue (virtual hold) or else
    of the number's queue first, then anyone."""
    members: list[str] = []
    queue_id = queue_id if queue_id in config.queues else number.routing.queue
    if queue_id:
        members = list(config.queues[queue_id].members)
    members += [e for e in config.employees if e not in members]
    busy = await services.claims.busy()
    workdays = await services.workdays()
    for member in members:
        if may_ring(
            workday=workday_of(workdays.get(member)), on_call=member in busy, skip_absent=True
        ):
            return member
    return None
