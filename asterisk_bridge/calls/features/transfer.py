"""Transfers (SPEC section 8), carried out inside a conversation.

Three ways in, one way through: a REFER from the employee's phone (ChannelTransfer), the
employee's keypad codes, and the API each resolve their target with policy.transfer and
end up in `blind` or `attended` below.

The caller never leaves the conversation's bridge (it hears the number's hold music
while the target rings), so the bridge's recording spans the transfer and the warning,
played before the conversation, is never heard again. What the transferer's phone is
told (transfer_progress) follows the result: 100 while ringing, 200 once answered, 603
when nobody took it.
"""

from __future__ import annotations

import contextlib
import logging
from enum import Enum
from typing import TYPE_CHECKING, Any

from ...ari.errors import AriError, AriNotFound
from ...ari.events import ChannelDtmfReceived, ChannelTransfer, TransferProgress
from ...policy.numbers import allowed_external, region_of_number
from ...policy.queue import may_ring, workday_of
from ...policy.transfer import (
    Directory,
    EmployeeTarget,
    ExternalTarget,
    KeypadAction,
    KeypadCommand,
    QueueTarget,
    Target,
    TargetError,
    TransferMode,
    TransferResult,
    TransferVia,
    resolve_target,
    result_of_ring,
)
from ..core.caller_id import forward_caller_id
from ..core.connect import Leg, RingOutcome, TalkEnd, leg_ended, ring
from ..core.details import now
from ..core.party import Party, TransferAsked

if TYPE_CHECKING:
    from ..core.call import Call
    from ..core.conversation import Conversation

log = logging.getLogger("numcfg.calls")

_PHONE_IS_TOLD = {
    TransferResult.ANSWERED: TransferProgress.ANSWERED,
    TransferResult.BUSY: TransferProgress.UNAVAILABLE,
}


class ConsultEnd(Enum):
    COMPLETE = "complete"
    CANCEL = "cancel"
    CALLER_GONE = "caller_gone"


def directory(call: Call) -> Directory:
    """What a transfer of this call may name (its config; the allowlist is checked again
    against the current one before dialing)."""
    config = call.config
    number = config.numbers.get(call.record.number or "")
    return Directory(
        extensions={eid: e.extension for eid, e in config.employees.items()},
        queues=tuple(config.queues),
        allowlist=tuple(config.account.external_allowlist),
        region=region_of_number(number.number) if number is not None else None,
    )


# -- the three ways in ----------------------------------------------------------------


async def from_phone(conv: Conversation, event: ChannelTransfer) -> None:
    """A REFER: blind with a Refer-To user part, attended with Replaces."""
    call = conv.call
    leg_id = conv.party.leg.channel_id
    if conv.busy or not conv.transferable:
        await _tell_phone(call, leg_id, TransferProgress.DECLINED)
        return
    if event.replaces:
        await _attended_refer(conv, event)
        return
    try:
        target = resolve_target(event.destination, directory(call))
    except TargetError as exc:
        log.info("call %s: REFER to %r refused: %s", call.record.id, event.destination, exc)
        _entry(
            conv, event.destination, TransferMode.BLIND, TransferVia.PHONE, TransferResult.REFUSED
        )
        await _tell_phone(call, leg_id, TransferProgress.DECLINED)
        return
    await blind(conv, target, requested=event.destination, via=TransferVia.PHONE)


async def decline_phone(call: Call, channel_id: str) -> None:
    """A REFER numcfg does not carry out: the phone hears 603 and keeps its call."""
    log.info("call %s: REFER on %s declined", call.record.id, channel_id)
    await _tell_phone(call, channel_id, TransferProgress.DECLINED)


async def from_keypad(conv: Conversation, command: KeypadCommand) -> None:
    if conv.busy or command.action not in (KeypadAction.BLIND, KeypadAction.ATTENDED):
        return
    mode = TransferMode(command.action.value)
    try:
        target = resolve_target(command.target, directory(conv.call))
    except TargetError as exc:
        log.info("call %s: keypad transfer refused: %s", conv.call.record.id, exc)
        _entry(conv, command.target, mode, TransferVia.KEYPAD, TransferResult.REFUSED)
        await _say_refused(conv)
        return
    if mode is TransferMode.BLIND:
        await blind(conv, target, requested=command.target, via=TransferVia.KEYPAD)
    else:
        await attended(conv, target, requested=command.target, via=TransferVia.KEYPAD)


async def from_api(conv: Conversation, to: str, mode: str) -> None:
    """Checked by the API before it answered 202 (target, state); checked again here,
    since the conversation may have moved on in between."""
    conv.busy = False  # the reservation Conversation.ask made ends here
    if mode not in (TransferMode.BLIND, TransferMode.ATTENDED):
        return
    try:
        target = resolve_target(to, directory(conv.call))
    except TargetError:
        return
    if mode == TransferMode.BLIND:
        await blind(conv, target, requested=to, via=TransferVia.API)
    else:
        await attended(conv, target, requested=to, via=TransferVia.API)


# -- blind ----------------------------------------------------------------------------


async def blind(conv: Conversation, target: Target, *, requested: str, via: TransferVia) -> None:
    """The transferer leaves; the target rings while the caller hears hold music. Nobody
    answers: back to the transferer if they are free, else the target's voicemail."""
    call = conv.call
    transferer = conv.party
    entry = _entry(conv, requested, TransferMode.BLIND, via, None, target=target)
    conv.busy = True
    try:
        if via is TransferVia.PHONE:
            await _tell_phone(call, transferer.leg.channel_id, TransferProgress.PROGRESS)
        if isinstance(target, QueueTarget):
            # The caller joins the queue as any caller would; the flow runs it next and
            # fills in this transfer's result (answered, or no_answer at max_wait).
            call.transfer_entry = entry
            if via is TransferVia.PHONE:
                await _tell_phone(call, transferer.leg.channel_id, TransferProgress.ANSWERED)
            await _drop(conv, transferer)
            conv.queue_id = target.queue_id
            conv.end(TalkEnd.TO_QUEUE)
            return
        await _hold(conv, transferer)
        # A phone decides itself when to hang up; keypad and API transferers are done.
        transferer_kept = via is TransferVia.PHONE
        if not transferer_kept:
            await _drop(conv, transferer)
        result, new_party = await _ring_target(conv, target, ringback_to=None)
        entry["result"] = result.value
        await _unhold(conv)
        if via is TransferVia.PHONE:
            told = _PHONE_IS_TOLD.get(result, TransferProgress.DECLINED)
            await _tell_phone(call, transferer.leg.channel_id, told)
        if new_party is not None and await conv.join(new_party):
            if transferer_kept:
                await _drop(conv, transferer)
            await _took_over(conv, new_party)
            return
        if call.hung_up:
            return
        await _back_to_transferer(conv, transferer, target, kept=transferer_kept)
    finally:
        conv.busy = False
        await call.note_progress()


async def _back_to_transferer(
    conv: Conversation, transferer: Party, target: Target, *, kept: bool
) -> None:
    call = conv.call
    if kept and await _still_up(call, transferer.leg.channel_id) and await conv.join(transferer):
        conv.party = transferer
        return
    if transferer.employee_id is not None:
        # Rung again, as a transferer who hung up would expect ("back to me if free").
        result, party = await _ring_employee(conv, transferer.employee_id, ringback_to=None)
        if party is not None and await conv.join(party):
            await _took_over(conv, party)
            return
        log.info("call %s: transferer not reached again (%s)", call.record.id, result.value)
    if isinstance(target, EmployeeTarget):
        conv.voicemail_owner = target.employee_id
        conv.end(TalkEnd.TO_VOICEMAIL)
        return
    conv.end(TalkEnd.ABANDONED)


# -- attended -------------------------------------------------------------------------


async def attended(conv: Conversation, target: Target, *, requested: str, via: TransferVia) -> None:
    """The transferer consults the target first (the caller on hold), then completes
    (`*2` again, the API, or by hanging up) or cancels (`*0`, the target hanging up)."""
    if isinstance(target, QueueTarget):
        # Nobody in a queue can be consulted before the caller joins it.
        await blind(conv, target, requested=requested, via=via)
        return
    call = conv.call
    transferer = conv.party
    entry = _entry(conv, requested, TransferMode.ATTENDED, via, None, target=target)
    conv.busy = True
    try:
        await _hold(conv, transferer)
        result, consulted = await _ring_target(conv, target, ringback_to=transferer.leg.channel_id)
        if consulted is None:
            entry["result"] = result.value
            await _return(conv, transferer)
            return
        ended = await _consult(conv, transferer, consulted)
        if ended is ConsultEnd.COMPLETE and await conv.join(consulted):
            entry["result"] = TransferResult.ANSWERED.value
            await _unhold(conv)
            await _drop(conv, transferer)
            await _took_over(conv, consulted)
            return
        entry["result"] = TransferResult.CANCELLED.value
        await _drop(conv, consulted)
        if ended is not ConsultEnd.CALLER_GONE:
            await _return(conv, transferer)
    finally:
        conv.consulting = False
        conv.busy = False
        await call.note_progress()


async def _consult(conv: Conversation, transferer: Party, consulted: Party) -> ConsultEnd:
    """Transferer and target talk in a bridge of their own until one of them decides."""
    call = conv.call
    assert conv.events is not None
    bridge_id = call.new_bridge_id()
    conv.events.add(bridge_id)
    conv.consulting = True
    conv.reader.reset()
    try:
        await call.client.create_bridge(bridge_id, kind="mixing,dtmf_events", name="consult")
        # One of them may have hung up already (404): the loop below sees who.
        with contextlib.suppress(AriNotFound):
            await call.client.add_to_bridge(
                bridge_id,
                [transferer.leg.channel_id, consulted.leg.channel_id],
                absorb_dtmf=True,
            )
        while not call.hung_up:
            event = await conv.events.next()
            if leg_ended(event, consulted.leg.channel_id, bridge_id):
                return ConsultEnd.CANCEL  # the target hung up: back with the caller
            if leg_ended(event, transferer.leg.channel_id, ""):
                return ConsultEnd.COMPLETE  # hanging up completes, as Asterisk's atxfer
            match event:
                case ChannelDtmfReceived(channel=ch, digit=digit) if (
                    ch.id == transferer.leg.channel_id
                ):
                    command = conv.reader.feed(digit, 0.0, consulting=True)
                    if command is not None and command.action is KeypadAction.COMPLETE:
                        return ConsultEnd.COMPLETE
                    if command is not None and command.action is KeypadAction.CANCEL:
                        return ConsultEnd.CANCEL
                case TransferAsked(mode="complete"):
                    return ConsultEnd.COMPLETE
                case TransferAsked(mode="cancel"):
                    return ConsultEnd.CANCEL
        return ConsultEnd.CALLER_GONE
    finally:
        with contextlib.suppress(AriError):
            await call.client.destroy_bridge(bridge_id)
        call.forget_bridge(bridge_id)
        conv.reader.reset()


async def _attended_refer(conv: Conversation, event: ChannelTransfer) -> None:
    """REFER with Replaces: the phone consulted the target on a call of its own. The
    caller can take that call's place only when its other side is a channel numcfg
    controls; otherwise the phone is told no (it keeps both calls)."""
    call = conv.call
    transferer = conv.party
    entry = _entry(conv, event.replaces, TransferMode.ATTENDED, TransferVia.PHONE, None)
    peer = event.replaced_peer
    if not peer or not await conv.join(Party(Leg(peer, "replaced"), None)):
        entry["result"] = TransferResult.REFUSED.value
        await _tell_phone(call, transferer.leg.channel_id, TransferProgress.DECLINED)
        return
    entry["result"] = TransferResult.ANSWERED.value
    await _tell_phone(call, transferer.leg.channel_id, TransferProgress.ANSWERED)
    await _drop(conv, transferer)


# -- steps ----------------------------------------------------------------------------


def _entry(
    conv: Conversation,
    requested: str,
    mode: TransferMode,
    via: TransferVia,
    result: str | None,
    *,
    target: Target | None = None,
) -> dict[str, Any]:
    """The call details' transfers[] entry (SPEC section 8), filled in as it goes; the
    route names the resolved `target` (the text as requested when it resolved to none)."""
    call = conv.call
    entry: dict[str, Any] = {
        "from": conv.party.employee_id,
        "to": requested,
        "mode": mode.value,
        "at": now().isoformat(),
        "result": result,
        "via": via.value,
    }
    call.record.transfers.append(entry)
    call.step(f"transfer:{target.label if target is not None else requested}")
    return entry


async def _ring_target(
    conv: Conversation, target: Target, *, ringback_to: str | None
) -> tuple[TransferResult, Party | None]:
    match target:
        case EmployeeTarget(employee_id=employee_id):
            return await _ring_employee(conv, employee_id, ringback_to=ringback_to)
        case ExternalTarget(e164=e164):
            return await _ring_external(conv, e164, ringback_to=ringback_to)
    return TransferResult.REFUSED, None


async def _ring_employee(
    conv: Conversation, employee_id: str, *, ringback_to: str | None
) -> tuple[TransferResult, Party | None]:
    """An employee target follows the number's availability rules: absent (when absent
    employees are skipped) is refused, on another call is busy."""
    call = conv.call
    config = call.config
    number = config.numbers.get(call.record.number or "")
    skip_absent = number.routing.skip_absent_employees if number is not None else True
    services = call.services
    state = services.runtime.last_workdays.get(employee_id)
    if skip_absent:
        state = await services.db_or(state, services.store.people.workday, employee_id)
    if not may_ring(workday=workday_of(state), on_call=False, skip_absent=skip_absent):
        log.info("call %s: transfer target %s is absent", call.record.id, employee_id)
        return TransferResult.REFUSED, None
    if not await services.claims.claim(employee_id, call.record.id):
        return TransferResult.BUSY, None
    conv.claimed.add(employee_id)
    outcome, leg = await _ring(conv, config.employees[employee_id].endpoint, ringback_to)
    if leg is None:
        conv.claimed.discard(employee_id)
        await services.claims.release(employee_id, call.record.id)
        return _ring_result(outcome), None
    return TransferResult.ANSWERED, Party(leg, employee_id)


async def _ring_external(
    conv: Conversation, e164: str, *, ringback_to: str | None
) -> tuple[TransferResult, Party | None]:
    call = conv.call
    # The allowlist as it is now: one narrowed by a reload applies to calls in progress.
    if not allowed_external(e164, call.services.config_holder.current.account.external_allowlist):
        return TransferResult.REFUSED, None
    endpoint = call.config.asterisk.trunk.replace("{number}", e164)
    outcome, leg = await _ring(conv, endpoint, ringback_to, caller_id=forward_caller_id(call))
    if leg is None:
        return _ring_result(outcome), None
    return TransferResult.ANSWERED, Party(leg, None)


async def _ring(
    conv: Conversation, endpoint: str, ringback_to: str | None, caller_id: str | None = None
) -> tuple[RingOutcome, Leg | None]:
    call = conv.call
    outcome, leg = await ring(
        call,
        endpoint,
        ring_time=call.config.asterisk.transfer_ring_time,
        caller_id=caller_id or call.record.caller or None,
        ringback=ringback_to is not None,
        ringback_to=ringback_to,
    )
    if leg is not None and conv.events is not None:
        conv.events.add(leg.channel_id)  # no await since ring() returned: nothing missed
    return outcome, leg


def _ring_result(outcome: RingOutcome) -> TransferResult:
    if outcome is RingOutcome.CALLER_HUNG_UP:
        return TransferResult.CANCELLED
    return result_of_ring(outcome.value)


async def _took_over(conv: Conversation, party: Party) -> None:
    """The target talks to the caller now: `employee` is the last one who talked, the
    route ends with them, and the CRM's lead follows (reassign_lead_on_transfer)."""
    call = conv.call
    conv.party = party
    if party.employee_id is None:
        return
    call.record.employee = party.employee_id
    call.step(f"employee:{party.employee_id}")
    for observer in call.services.observers:
        await observer.employee_answered(call, party.employee_id)


async def _hold(conv: Conversation, transferer: Party) -> None:
    """The transferer leaves the caller's bridge; the caller hears the hold music."""
    call = conv.call
    with contextlib.suppress(AriError):
        await call.client.remove_from_bridge(conv.bridge_id, transferer.leg.channel_id)
    with contextlib.suppress(AriError):
        await call.client.start_bridge_moh(conv.bridge_id, await call.moh_class())


async def _unhold(conv: Conversation) -> None:
    with contextlib.suppress(AriError):
        await conv.call.client.stop_bridge_moh(conv.bridge_id)


async def _return(conv: Conversation, transferer: Party) -> None:
    """Back with the caller after a consultation that did not end in a transfer."""
    await _unhold(conv)
    if not await conv.join(transferer):
        conv.end(TalkEnd.CALLEE_HUNG_UP)  # the transferer hung up meanwhile


async def _drop(conv: Conversation, party: Party) -> None:
    """Hang up a party that is done, and free the employee for their next call."""
    call = conv.call
    with contextlib.suppress(AriError):
        await call.client.hangup(party.leg.channel_id)
    call.forget_channel(party.leg.channel_id)
    if party.employee_id is not None:
        conv.claimed.discard(party.employee_id)
        await call.services.claims.release(party.employee_id, call.record.id)


async def _still_up(call: Call, channel_id: str) -> bool:
    try:
        await call.client.get_channel(channel_id)
    except AriError:
        return False
    return True


async def _tell_phone(call: Call, channel_id: str, state: TransferProgress) -> None:
    try:
        await call.client.transfer_progress(channel_id, state)
    except AriError as exc:  # the phone hung up already: nothing left to tell
        log.info("call %s: transfer_progress %s not sent: %s", call.record.id, state, exc)


async def _say_refused(conv: Conversation) -> None:
    """A keypad target that is no one: the employee hears it, the caller does not."""
    call = conv.call
    with contextlib.suppress(AriError):
        await call.client.play(conv.party.leg.channel_id, call.prompt("invalid-extension"))
