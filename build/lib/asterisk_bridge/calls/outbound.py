"""Calls employees place to clients (SPEC section 4, `outbound,<dialed>`): the prefix picks
the number shown, the employee must be allowed to use it, the call goes out through the
trunk, is recorded per the number's settings, and creates a lead per `create_lead`."""

from __future__ import annotations

import contextlib
import logging

from ..ari.errors import AriError
from ..ari.events import Channel
from ..policy.numbers import (
    allowed_external,
    employee_may_use,
    is_safe_dial_token,
    normalize_destination,
    region_of_number,
    select_outbound,
)
from ..policy.types import Direction, Disposition
from .core.call import Call
from .core.connect import RingOutcome, ring
from .core.employees import talk
from .features.crm_journal import call_started
from .workday import employee_of_channel

log = logging.getLogger("numcfg.calls")

# An outgoing call rings the client this long; clients' own voicemail usually answers
# before it.
OUTBOUND_RING_SECONDS = 60


def pick_number(call: Call, dialed: str) -> tuple[str, str] | None:
    numbers = call.config.numbers
    prefixes = {
        nid: n.outbound.prefix
        for nid, n in numbers.items()
        if n.outbound.selectable and n.outbound.prefix
    }
    chosen = select_outbound(dialed, prefixes)
    if chosen is not None:
        return chosen
    # No prefix dialed: the first selectable number without a prefix is the default line.
    for nid, n in numbers.items():
        if n.outbound.selectable and not n.outbound.prefix:
            return nid, dialed
    return None


async def run_outbound(call: Call, dialed: str, employee_id: str | None, channel: Channel) -> None:
    call.record.direction = Direction.OUTGOING
    call.record.disposition = Disposition.FAILED
    if not is_safe_dial_token(dialed):
        log.warning("outbound: refused dialed string %r", dialed)
        return
    employee_id = employee_id if employee_id in call.config.employees else None
    employee_id = employee_id or employee_of_channel(call, channel)
    call.record.employee = employee_id
    chosen = pick_number(call, dialed)
    if employee_id is None or chosen is None:
        log.warning("outbound %s: no employee (%s) or no number for it", dialed, employee_id)
        return
    number_id, rest = chosen
    number = call.config.numbers[number_id]
    call.record.number = number_id
    call.record.caller = number.number
    call.lang = number.language or "en"
    if not employee_may_use(number.outbound.allowed_employees, employee_id):
        log.warning("outbound: %s may not call out on %s", employee_id, number_id)
        return
    destination = normalize_destination(rest, region_of_number(number.number) or "FR")
    call.record.callee = destination or rest
    if destination is None or not allowed_external(
        destination, call.config.account.external_allowlist
    ):
        log.warning("outbound: %r is not an allowed external number", rest)
        return
    await call_started(call, direction=Direction.OUTGOING, phone=destination)
    await call.recorder.plan()
    with contextlib.suppress(AriError):
        await call.client.ring(call.channel_id)  # the employee hears ringing
    endpoint = call.config.asterisk.trunk.replace("{number}", destination)
    outcome, leg = await ring(
        call, endpoint, ring_time=OUTBOUND_RING_SECONDS, caller_id=number.number, ringback=False
    )
    if outcome is RingOutcome.CALLER_HUNG_UP:
        call.record.disposition = Disposition.ABANDONED
        return
    if leg is None:
        call.record.disposition = Disposition.MISSED
        return
    await call.answer()
    call.step(f"employee:{employee_id}")
    await talk(call, leg, employee_id=None, step=f"forward:{destination}")
    call.record.employee = employee_id
    call.record.disposition = Disposition.ANSWERED
