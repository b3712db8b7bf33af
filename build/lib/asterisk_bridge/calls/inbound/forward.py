"""Forwarding to mobiles and external numbers through the trunk."""

from __future__ import annotations

import logging

from ...policy.numbers import allowed_external, is_e164
from ..core.call import Call
from ..core.caller_id import forward_caller_id
from ..core.connect import RingOutcome, ring
from ..core.employees import Reach, talk

log = logging.getLogger("numcfg.calls")

# How long an external number rings before the next fallback: long enough for a mobile
# to be fished out of a pocket, short of most voicemail pickups.
FORWARD_RING_SECONDS = 25


async def forward(
    call: Call, e164: str, *, step: str, ring_time: float = FORWARD_RING_SECONDS
) -> Reach:
    """Ring an external number; refused (NOT_REACHED) outside the allowlist."""
    # Checked at load time too; checked again here against the config the call started
    # with AND the current one: an allowlist narrowed by a reload applies at once, even
    # to calls already in progress, and callback phones come from requests.
    current = call.services.config_holder.current.account.external_allowlist
    for patterns in (call.config.account.external_allowlist, current):
        if not is_e164(e164) or not allowed_external(e164, patterns):
            log.warning(
                "call %s: forward to %s refused: outside external_allowlist", call.record.id, e164
            )
            return Reach.NOT_REACHED
    endpoint = call.config.asterisk.trunk.replace("{number}", e164)
    outcome, leg = await ring(
        call, endpoint, ring_time=ring_time, caller_id=forward_caller_id(call)
    )
    if outcome is RingOutcome.CALLER_HUNG_UP:
        return Reach.CALLER_GONE
    if leg is None:
        return Reach.NOT_REACHED
    await talk(call, leg, employee_id=None, step=step)
    return Reach.TALKED


async def forward_to_mobile(call: Call, employee_id: str) -> Reach:
    mobile = call.config.employees[employee_id].mobile
    if not mobile:
        return Reach.NOT_REACHED
    reach = await forward(call, mobile, step=f"mobile:{employee_id}")
    if reach is Reach.TALKED:
        call.record.employee = employee_id
    return reach
