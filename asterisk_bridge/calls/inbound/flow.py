"""Incoming calls on a configured number: the interpreter of policy.route's steps.

policy.route decides which step comes next (SPEC section 4, steps 1 to 8) and how the
call ended; this module gathers the facts, executes each step through ari/ and reports
how it ended. Nothing here decides the route.
"""

from __future__ import annotations

import logging
import re

from ...ari.errors import AriError
from ...ari.media import Status, wait_digits
from ...config.schema import HoldMusicLanguage, Number
from ...lifecycle import effective_status
from ...policy.digits import TypedKind, match_typed_ahead
from ...policy.hours import is_open
from ...policy.route import (
    NOT_IN_SERVICE,
    RECORDING_WARNING,
    CrmLookup,
    Done,
    Facts,
    Forward,
    Greeting,
    Hangup,
    Menu,
    Outcome,
    QueueStep,
    Result,
    Ring,
    Say,
    SipTo,
    Step,
    Voicemail,
    disposition,
    first_step,
    next_step,
    transferred_to_queue,
)
from ...policy.transfer import TransferResult
from ...policy.types import Direction, Disposition
from ...store.numbers import CALL_MAX_AGE_SECONDS
from ..callback import missed_call_callback
from ..core.call import Call
from ..core.employees import Reach, ring_employee
from ..features.crm_journal import call_started, crm_responsible
from ..queue import run_queue
from .forward import forward, forward_to_mobile
from .menu import run_menu
from .voicemail import leave_voicemail

log = logging.getLogger("numcfg.calls")

# After the greeting ends, a caller who knows an extension gets this long to start
# dialing it; short, because every other caller waits it out too.
EXTENSION_GRACE_SECONDS = 2.0
# Between the digits of an extension (as an IVR's inter-digit default).
EXTENSION_INTER_DIGIT_SECONDS = 3.0
# "<sip:101@127.0.0.1>" or "sip:101@host;user=phone" -> "101"
_TO_USER = re.compile(r"sips?:([^@;>]+)@")

_REACH_OUTCOME = {
    Reach.TALKED: Outcome.TALKED,
    Reach.NOT_REACHED: Outcome.NO_ANSWER,
    Reach.CALLER_GONE: Outcome.CALLER_GONE,
}


def number_language(number: Number) -> str:
    """Prompts follow the number's language, else its hold music's, else English."""
    if number.language:
        return number.language
    if isinstance(number.hold_music, HoldMusicLanguage):
        return number.hold_music.language
    return "en"


async def run_inbound(call: Call, number_id: str) -> None:
    config = call.config
    number = config.numbers.get(number_id)
    call.record.number = number_id if number is not None else None
    facts = await _facts(call, number)
    if number is not None and facts.in_service:
        call.record.callee = number.number
        call.lang = number_language(number)
        await call.note_progress()  # listed as in progress with its number from now on
        await call_started(call, direction=Direction.INCOMING, phone=call.record.caller)
    trail: list[Result] = []
    step = first_step(number, facts, queues=config.queues)
    if facts.known and facts.in_service and not facts.open:
        call.step("after_hours")
    elif facts.known and facts.in_service and not await call.answer():
        trail.append(Result(step, Outcome.CALLER_GONE))
        step = Done()
    while not isinstance(step, Done):
        result = await _execute(call, step)
        trail.append(result)
        call.record.disposition = disposition(facts, trail)
        _settle_queue_transfer(call, result)
        if call.transfer_queue is not None and not call.hung_up:
            step = transferred_to_queue(call.transfer_queue, config.queues)
            call.transfer_queue = None
            continue
        step = next_step(number, result, employees=config.employees, queues=config.queues)
    call.record.disposition = verdict = disposition(facts, trail)
    if verdict is Disposition.MISSED and not _hung_up_by_step(trail) and not call.hung_up:
        # Nobody took the call: say so in the route, and let the caller go.
        call.step("hangup")
        await call.hangup()
    await missed_call_callback(call)


def _settle_queue_transfer(call: Call, result: Result) -> None:
    """The queue a caller was transferred to ended: that is the transfer's result."""
    entry = call.transfer_entry
    if entry is None or not isinstance(result.step, QueueStep) or call.transfer_queue:
        return
    call.transfer_entry = None
    answered = result.outcome is Outcome.TALKED
    entry["result"] = (TransferResult.ANSWERED if answered else TransferResult.NO_ANSWER).value


def _hung_up_by_step(trail: list[Result]) -> bool:
    return bool(trail) and isinstance(trail[-1].step, Hangup)


async def _facts(call: Call, number: Number | None) -> Facts:
    if number is None:
        return Facts(known=False, in_service=False, open=False, will_record=False)
    if await _out_of_service(call, call.record.number or ""):
        log.info("call %s: number %r not in service", call.record.id, call.record.number)
        return Facts(known=True, in_service=False, open=False, will_record=False)
    schedule_id = number.working_hours.schedule
    hours = call.config.schedules[schedule_id].hours if schedule_id is not None else None
    open_now = hours is None or is_open(hours, call.services.clock())
    will_record = await call.recorder.plan() if open_now else False
    return Facts(known=True, in_service=True, open=open_now, will_record=will_record)


async def _execute(call: Call, step: Step) -> Result:
    """Run one step; report how it ended (CALLER_GONE whenever the caller left)."""
    result = await _run_step(call, step)
    # A caller who took the virtual-hold offer was hung up on by numcfg: not abandoned.
    kept = (Outcome.TALKED, Outcome.VOICEMAIL, Outcome.CALLBACK_REQUESTED)
    if call.hung_up and result.outcome not in kept:
        return Result(step, Outcome.CALLER_GONE, result.employee, result.action)
    return result


async def _run_step(call: Call, step: Step) -> Result:
    match step:
        case Say(prompt=prompt) if prompt == NOT_IN_SERVICE:
            await call.answer()
            await call.play_prompt(NOT_IN_SERVICE)
            call.step("hangup")
            return Result(step, Outcome.DONE)
        case Say(prompt=prompt) if prompt == RECORDING_WARNING:
            if not call.warned:  # once per call, ever (never again after a transfer)
                call.warned = True
                call.step("warning")
                await call.play_prompt(RECORDING_WARNING)
            return Result(step, Outcome.DONE)
        case Say(prompt=prompt):
            await call.play_prompt(prompt)
            return Result(step, Outcome.DONE)
        case SipTo():
            return Result(step, Outcome.DONE, employee=await _sip_to(call))
        case Greeting(media=media, collect_extension=collect):
            call.step("greeting")
            options = _typed_ahead_options(call)
            if not collect and not options:
                await call.play(media)
                return Result(step, Outcome.DONE)
            employee = await _greeting_digits(
                call,
                media,
                collect=collect,
                options=options,
                menu=None if collect else _menu_prompt_next(call, step),
            )
            return Result(step, Outcome.DONE, employee=employee)
        case Menu(menu_id=menu_id):
            typed, call.typed_ahead = call.typed_ahead, None
            played, call.menu_prompt_played = call.menu_prompt_played == menu_id, None
            action = await run_menu(call, menu_id, typed=typed, prompt_played=played)
            if action is None:
                return Result(step, Outcome.CALLER_GONE)
            return Result(step, Outcome.DONE, action=action)
        case CrmLookup():
            return Result(step, Outcome.DONE, employee=await crm_responsible(call))
        case Ring(employee=employee, ring_time=ring_time):
            if not await call.answer():
                return Result(step, Outcome.CALLER_GONE)
            reach = await ring_employee(call, employee, ring_time=ring_time)
            return Result(step, _REACH_OUTCOME[reach])
        case QueueStep(queue_id=queue_id):
            return Result(step, await run_queue(call, queue_id))
        case Voicemail(owner=owner):
            await leave_voicemail(call, owner)
            return Result(step, Outcome.VOICEMAIL)
        case Forward(to=to, employee=employee):
            if employee is not None:
                reach = await forward_to_mobile(call, employee)
            else:
                reach = await forward(call, to, step=f"forward:{to}")
            return Result(step, _REACH_OUTCOME[reach])
        case Hangup(message=message):
            if message and await call.answer():
                await call.play(message)
            call.step("hangup")
            await call.hangup()
            return Result(step, Outcome.DONE)
    raise TypeError(f"no interpreter for step {step!r}")


async def _sip_to(call: Call) -> str | None:
    """Step 4: the employee whose extension is the INVITE's To: user part."""
    try:
        header = await call.client.get_variable(call.channel_id, "PJSIP_HEADER(read,To)")
    except AriError as exc:
        log.info("call %s: no SIP To header (%s)", call.record.id, exc)
        return None
    match = _TO_USER.search(header or "")
    extension = match.group(1) if match else ""
    # Only digits ever reach the employee lookup; anything else in To: is ignored.
    if not extension.isdigit():
        return None
    employee_id = call.config.employee_by_extension(extension)
    if employee_id is None:
        log.info("call %s: To: extension %s is nobody's", call.record.id, extension)
        return None
    call.step(f"sip_to:{extension}")
    return employee_id


def _typed_ahead_options(call: Call) -> tuple[str, ...]:
    """The options of the IVR the route reaches after the greeting: a caller may type
    one during the greeting (SPEC section 9)."""
    number = call.config.numbers[call.record.number]
    menu = call.config.ivr_menus.get(number.routing.ivr or "")
    return tuple(menu.options) if menu is not None else ()


def _menu_prompt_next(call: Call, step: Greeting) -> tuple[str, str] | None:
    """The menu the route runs right after this greeting and its prompt, when it has one
    to play straight after the greeting."""
    number = call.config.numbers[call.record.number or ""]
    following = next_step(
        number,
        Result(step, Outcome.DONE),
        employees=call.config.employees,
        queues=call.config.queues,
    )
    if not isinstance(following, Menu):
        return None
    menu = call.config.ivr_menus.get(following.menu_id)
    if menu is None or not menu.prompt:
        return None
    return following.menu_id, menu.prompt


async def _greeting_digits(
    call: Call,
    media: str,
    *,
    collect: bool,
    options: tuple[str, ...],
    menu: tuple[str, str] | None = None,
) -> str | None:
    """Play the greeting; digits typed during it (or just after, with extension dialing)
    are an extension (its employee is returned), an option of the number's IVR (kept in
    `call.typed_ahead` for the menu step, which then skips its prompt) or neither ("invalid
    extension", and the route goes on).

    `menu`: the menu that comes next and its prompt, played in the same playback as the
    greeting (one request and two events fewer per call, issue 15; the caller hears the
    same). A digit during it counts as typed during the greeting (a wrong one gets the
    menu's "ivr-invalid"); a playback that ends with no digit has played the prompt,
    which the menu then does not play again."""
    result = await call.play(f"{media},{menu[1]}" if menu else media, interrupt_on_digit=True)
    if result.status is Status.HANGUP:
        return None
    if menu and result.status is Status.FINISHED and not call.inbox.digits:
        call.menu_prompt_played = menu[0]
        return None
    extensions = {e.extension for e in call.config.employees.values()} if collect else None

    def done(buffer: str) -> Status | None:
        typed = match_typed_ahead(buffer, extensions=extensions, options=options)
        return None if typed.kind is TypedKind.WAIT else Status.FINISHED

    status, buffer = await wait_digits(
        call.inbox,
        # Without extension dialing only digits typed during the greeting count.
        first_timeout=EXTENSION_GRACE_SECONDS if collect else 0.0,
        inter_timeout=EXTENSION_INTER_DIGIT_SECONDS,
        done=done,
    )
    if status is Status.HANGUP or not buffer:
        return None
    typed = match_typed_ahead(
        buffer, extensions=extensions, options=options, timed_out=status is Status.TIMEOUT
    )
    if typed.kind is TypedKind.OPTION:
        call.typed_ahead = typed.value
        return None
    if menu:
        # A wrong key while the menu's prompt may have been playing: the menu's answer
        # to one (then its prompt again), not "invalid extension" with no dialing on.
        log.info(
            "call %s: caller pressed %r, no option of menu %s", call.record.id, buffer, menu[0]
        )
        await call.play_prompt("ivr-invalid")
        return None
    employee_id = (
        call.config.employee_by_extension(typed.value or "")
        if typed.kind is TypedKind.EXTENSION
        else None
    )
    if employee_id is None:
        log.info("call %s: caller dialed unknown extension %r", call.record.id, buffer)
        await call.play_prompt("invalid-extension")
        return None
    call.step(f"extension:{typed.value}")
    return employee_id


async def _out_of_service(call: Call, number_id: str) -> bool:
    numbers = call.services.store.numbers
    try:
        state = numbers.cached(number_id, max_age=CALL_MAX_AGE_SECONDS) or await call.services.db(
            numbers.state, number_id, max_age=CALL_MAX_AGE_SECONDS
        )
    except Exception:
        # The store being down must not take the line down with it.
        log.exception("number state lookup failed; treating %s as active", number_id)
        return False
    # pending_disconnect still takes calls; 24 h later the number reads as disconnected.
    return effective_status(state, call.services.clock()) == "disconnected"
