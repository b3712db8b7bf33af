"""Click-to-call from a CRM card (Bitrix24 OnExternalCallStart): the employee's phone rings
first, then the client, shown the number SPEC section 4 picks for an outgoing call.

The portal registered the call already (its CALL_ID comes with the event), so the journal
only finishes it. The client's number comes from outside: it is normalized to E.164 and
checked against external_allowlist before it reaches a dial string.
"""

from __future__ import annotations

import logging
import uuid

from ..ari.inbox import new_id
from ..config.schema import Config
from ..crm import CallInfo
from ..policy.numbers import (
    allowed_external,
    employee_may_use,
    normalize_destination,
    region_of_number,
)
from ..policy.types import Direction
from .callback import employee_then_client
from .core.call import Call
from .core.context import Services
from .core.details import CallRecord
from .features.crm_journal import call_adopted

log = logging.getLogger("numcfg.calls")


def number_for_click(config: Config, employee_id: str, line: str | None) -> str | None:
    """The number a click-to-call goes out on: the portal's line when it is one of ours
    (numcfg registers each number as a line named by its E.164), else the default line of
    outgoing calls (the first selectable number without a prefix); the employee must be
    allowed to use it."""
    numbers = config.numbers
    candidates = [nid for nid, n in numbers.items() if line and n.number == line]
    candidates += [
        nid for nid, n in numbers.items() if n.outbound.selectable and not n.outbound.prefix
    ]
    for number_id in candidates:
        if employee_may_use(numbers[number_id].outbound.allowed_employees, employee_id):
            return number_id
    return None


async def click_to_call(
    services: Services, *, employee_id: str, phone: str, line: str | None, remote_id: str
) -> bool:
    """Place the call; False when it cannot be (unknown number, refused destination)."""
    config = services.config_holder.current
    number_id = number_for_click(config, employee_id, line)
    if number_id is None:
        log.warning("click-to-call: no number %s may call out on (line %r)", employee_id, line)
        await _refused(
            services, employee_id=employee_id, phone=phone, line=line, remote_id=remote_id
        )
        return False
    number = config.numbers[number_id]
    destination = normalize_destination(phone, region_of_number(number.number) or "FR")
    if destination is None or not allowed_external(destination, config.account.external_allowlist):
        log.warning("click-to-call: %r is not an allowed external number", phone)
        await _refused(
            services, employee_id=employee_id, phone=phone, line=line, remote_id=remote_id
        )
        return False
    record = CallRecord(
        id=uuid.uuid4().hex,
        number=number_id,
        direction=Direction.OUTGOING,
        caller=number.number,
        callee=destination,
    )
    call = Call(services=services, channel_id=new_id("c2c"), record=record, config=config)
    call.lang = number.language or "en"
    await call_adopted(call, phone=destination, employee=employee_id, remote_id=remote_id)
    return await employee_then_client(
        services,
        call,
        employee_id,
        destination,
        announce=None,
        what=f"click-to-call {remote_id}",
        caller_id=number.number,
    )


async def _refused(
    services: Services, *, employee_id: str, phone: str, line: str | None, remote_id: str
) -> None:
    """The portal registered the call before asking: a call numcfg will not place is
    finished there as failed, so it does not hang in the employee's journal."""
    crm = services.crm
    if crm is None:
        return
    info = CallInfo(
        call_id=uuid.uuid4().hex,
        number_id="",
        line_number=line or "",
        direction="outgoing",
        phone=phone,
        employee=employee_id,
        started_at=services.clock(),
    )
    await crm.notify_adopted(info, remote_id)
    await crm.notify_finished(
        info, duration=0, disposition="failed", rating=None, recording_path=None
    )
