"""Ringing employees: availability, the busy claim, and talking once answered."""

from __future__ import annotations

import logging
from enum import Enum

from ..features.rating import ask_rating
from ..inbound.voicemail import leave_voicemail
from .call import Call
from .connect import Leg, RingOutcome, TalkEnd, ring
from .conversation import Conversation
from .details import now
from .party import Party

log = logging.getLogger("numcfg.calls")


class Reach(Enum):
    """How an attempt to reach someone ended, from the flow's point of view."""

    TALKED = "talked"  # answered; the conversation is over
    NOT_REACHED = "not_reached"  # no answer, busy, unavailable or refused
    CALLER_GONE = "caller_gone"


async def ring_employee(
    call: Call, employee_id: str, *, ring_time: float, step: str | None = None
) -> Reach:
    """Ring one employee's phone; on answer bridge and talk until someone hangs up."""
    employee = call.config.employees[employee_id]
    claimed = await call.services.claims.claim(employee_id, call.record.id)
    if not claimed:
        log.info("call %s: %s is on another call", call.record.id, employee_id)
        return Reach.NOT_REACHED
    try:
        outcome, leg = await ring(
            call, employee.endpoint, ring_time=ring_time, caller_id=call.record.caller or None
        )
        if outcome is RingOutcome.CALLER_HUNG_UP:
            return Reach.CALLER_GONE
        if leg is None:
            log.info("call %s: %s not reached (%s)", call.record.id, employee_id, outcome.value)
            return Reach.NOT_REACHED
        await talk(call, leg, employee_id=employee_id, step=step or f"employee:{employee_id}")
        return Reach.TALKED
    finally:
        await call.services.claims.release(employee_id, call.record.id)


async def talk(call: Call, leg: Leg, *, employee_id: str | None, step: str) -> TalkEnd:
    call.step(step)
    call.record.employee = employee_id or call.record.employee
    if call.record.answered_at is None:
        call.record.answered_at = now()
        await call.note_progress()
    if employee_id:
        for observer in call.services.observers:
            await observer.employee_answered(call, employee_id)
    conversation = Conversation(call, Party(leg, employee_id))
    ended = await conversation.run()
    call.callee_hung_up_first = ended is TalkEnd.CALLEE_HUNG_UP
    if ended is TalkEnd.TO_QUEUE:
        call.transfer_queue = conversation.queue_id  # the flow runs the queue next
    elif ended is TalkEnd.TO_VOICEMAIL:
        await leave_voicemail(call, conversation.voicemail_owner)
    elif ended is TalkEnd.ABANDONED and not call.hung_up:
        call.step("hangup")
        await call.hangup()
    number = call.config.numbers.get(call.record.number or "")
    # Rated is who talked last (after transfers, not the one first rung).
    last = conversation.party.employee_id
    if call.callee_hung_up_first and last and number is not None and number.rating:
        await ask_rating(call)
    return ended
