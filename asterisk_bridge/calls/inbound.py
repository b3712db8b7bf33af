"""Incoming calls on a configured number: SPEC section 4, steps 1 to 11, in order."""

from __future__ import annotations

import logging
import re
from typing import Any

from ..ari.errors import AriError
from ..ari.media import Status, wait_digits
from ..policy.digits import MatchStatus, extension_on_timeout, match_extension
from ..policy.hours import Schedule as HoursSchedule
from ..policy.hours import is_open
from .actions import execute
from .call import Call
from .employees import Reach, ring_employee
from .forward import forward_to_mobile
from .queue import run_queue
from .voicemail import leave_voicemail

log = logging.getLogger("numcfg.calls")

# After the greeting ends, a caller who knows an extension gets this long to start
# dialing it; short, because every other caller waits it out too.
EXTENSION_GRACE_SECONDS = 2.0
# Between the digits of an extension (as an IVR's inter-digit default).
EXTENSION_INTER_DIGIT_SECONDS = 3.0
# "<sip:101@127.0.0.1>" or "sip:101@host;user=phone" -> "101"
_TO_USER = re.compile(r"sips?:([^@;>]+)@")


def number_language(number: Any) -> str:
    if getattr(number, "language", None):
        return str(number.language)
    hold = getattr(number, "hold_music", None)
    return str(getattr(hold, "language", None) or "en")


async def run_inbound(call: Call, number_id: str) -> None:
    config = call.config
    number = config.numbers.get(number_id)
    call.record.number = number_id if number is not None else None
    if number is None or await _out_of_service(call, number_id):
        # Step 1: unknown or disconnected number.
        log.info("call %s: number %r not in service", call.record.id, number_id)
        await call.answer()
        await call.play_prompt("not-in-service")
        call.step("hangup")
        call.record.disposition = "failed"
        return
    call.record.callee = number.number
    call.lang = number_language(number)
    from .crm_hooks import call_started

    await call_started(call, direction="incoming", phone=call.record.caller)

    # Step 2: working hours.
    schedule_id = number.working_hours.schedule
    if schedule_id is not None:
        schedule = config.schedules[schedule_id]
        hours = HoursSchedule(
            timezone=schedule.timezone, week=dict(schedule.week), holidays=list(schedule.holidays)
        )
        if not is_open(hours, call.services.clock()):
            call.step("after_hours")
            call.record.disposition = "after_hours"
            await execute(call, number.working_hours.after_hours)
            call.record.disposition = "after_hours"
            return

    if not await call.answer():
        call.record.disposition = "abandoned"
        return

    # Step 3: the recording warning, before anything else, once per call.
    if await call.recorder.plan() and number.recording.warning and not call.warned:
        call.warned = True
        call.step("warning")
        await call.play_prompt("recording-warning")
    if not await _handled(call, await _steps(call, number)):
        # Nobody took the call.
        if call.hung_up:
            call.record.disposition = call.record.disposition or "abandoned"
        else:
            call.step("hangup")
            call.record.disposition = call.record.disposition or "missed"
    from .callback import missed_call_callback

    await missed_call_callback(call)


async def _handled(call: Call, handled: bool) -> bool:
    if call.hung_up and call.record.disposition is None:
        call.record.disposition = "abandoned"
    return handled or call.hung_up


async def _steps(call: Call, number: Any) -> bool:
    """Steps 4 to 8; True once the call is handled."""
    routing = number.routing
    # Step 4: the extension in the SIP To: header.
    if routing.sip_to_header:
        if await _sip_to(call):
            return True
        if call.hung_up:
            return True
    # Step 5: greeting, with extension dialing.
    if routing.greeting:
        call.step("greeting")
        if routing.extension_dialing.enabled:
            if await _greeting_with_extensions(call, routing):
                return True
        else:
            await call.play(routing.greeting)
        if call.hung_up:
            return True
    # Step 6: IVR.
    if routing.ivr:
        return await execute_menu(call, routing.ivr)
    # Step 7: CRM responsible (the CRM integration plugs in here).
    if routing.crm_responsible.enabled and await _crm_responsible(call, routing):
        return True
    # Step 8: queue.
    if routing.queue:
        return await run_queue(call, routing.queue)
    return False


async def execute_menu(call: Call, menu_id: str) -> bool:
    from .menu import run_menu

    return await run_menu(call, menu_id)


async def _crm_responsible(call: Call, routing: Any) -> bool:
    from .crm_hooks import crm_responsible

    return await crm_responsible(call, routing)


async def _sip_to(call: Call) -> bool:
    try:
        header = await call.client.get_variable(call.channel_id, "PJSIP_HEADER(read,To)")
    except AriError as exc:
        log.info("call %s: no SIP To header (%s)", call.record.id, exc)
        return False
    match = _TO_USER.search(header or "")
    extension = match.group(1) if match else ""
    # Only digits ever reach the employee lookup; anything else in To: is ignored.
    if not extension.isdigit():
        return False
    employee_id = call.config.employee_by_extension(extension)
    if employee_id is None:
        log.info("call %s: To: extension %s is nobody's", call.record.id, extension)
        return False
    call.step(f"sip_to:{extension}")
    ring_time = call.config.numbers[call.record.number].routing.extension_dialing.ring_time
    reach = await ring_employee(call, employee_id, ring_time=ring_time)
    return reach is not Reach.NOT_REACHED


async def _greeting_with_extensions(call: Call, routing: Any) -> bool:
    """Play the greeting; digits dialed during it (or just after) ring that extension."""
    result = await call.play(routing.greeting, interrupt_on_digit=True)
    if result.status is Status.HANGUP:
        return True

    from .menu import digits_done

    status, buffer = await wait_digits(
        call.inbox,
        first_timeout=EXTENSION_GRACE_SECONDS,
        inter_timeout=EXTENSION_INTER_DIGIT_SECONDS,
        done=digits_done(match_extension),
    )
    if status is Status.HANGUP:
        return True
    if not buffer:
        return False
    if status is Status.FINISHED:
        extension = match_extension(buffer).value
    else:
        verdict = extension_on_timeout(buffer)
        extension = verdict.value if verdict.status is MatchStatus.COMPLETE else None
    employee_id = call.config.employee_by_extension(extension) if extension else None
    if employee_id is None:
        log.info("call %s: caller dialed unknown extension %r", call.record.id, buffer)
        await call.play_prompt("invalid-extension")
        return call.hung_up
    call.step(f"extension:{extension}")
    dialing = routing.extension_dialing
    reach = await ring_employee(call, employee_id, ring_time=dialing.ring_time)
    if reach is not Reach.NOT_REACHED:
        return True
    match dialing.no_answer:
        case "forward_to_mobile":
            reach = await forward_to_mobile(call, employee_id)
            return reach is not Reach.NOT_REACHED
        case "voicemail":
            await leave_voicemail(call, employee_id)
            return True
    return False  # continue: the flow goes on to the IVR / queue


async def _out_of_service(call: Call, number_id: str) -> bool:
    from ..lifecycle import effective_status

    try:
        state = await call.services.db(call.services.store.get_number_state, number_id)
    except Exception:
        # The store being down must not take the line down with it.
        log.exception("number state lookup failed; treating %s as active", number_id)
        return False
    # pending_disconnect still takes calls; 24 h later the number reads as disconnected.
    return effective_status(state or {}, call.services.clock()) == "disconnected"
