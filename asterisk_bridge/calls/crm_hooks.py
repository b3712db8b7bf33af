"""Where the call flow meets the CRM (SPEC section 4 step 7; leads; the call journal).

Every hook goes through CrmService, which never raises and never waits longer than
`crm.timeout`: a slow or broken CRM routes the call as for an unknown caller.
"""

from __future__ import annotations

import logging
from typing import Any

from ..crm import CallInfo
from .call import Call
from .employees import Reach, ring_employee
from .forward import forward_to_mobile
from .voicemail import leave_voicemail

log = logging.getLogger("numcfg.calls")


def call_info(call: Call, *, direction: str, phone: str) -> CallInfo:
    number = call.config.numbers[call.record.number]
    return CallInfo(
        call_id=call.record.id,
        number_id=call.record.number,
        line_number=number.number,
        direction=direction,
        phone=phone,
        employee=call.record.employee,
        started_at=call.record.started_at,
    )


async def call_started(call: Call, *, direction: str, phone: str) -> None:
    """Report the call and create its lead per `create_lead` (bounded by crm.timeout)."""
    crm = call.services.crm
    if crm is None or not phone:
        return
    call.crm_info = call_info(call, direction=direction, phone=phone)
    number = call.config.numbers[call.record.number]
    wants = number.crm.create_lead in ("both", direction)
    await crm.notify_started(call.crm_info, create_crm=wants)
    call.record.crm = await crm.lead_for_call(
        number_cfg=number, phone=phone, direction=direction, call=call.crm_info
    )


async def employee_answered(call: Call, employee_id: str) -> None:
    crm = call.services.crm
    info = getattr(call, "crm_info", None)
    if crm is None or info is None:
        return
    await crm.notify_answered(info, employee_id)
    number = call.config.numbers[call.record.number]
    lead = call.record.crm or {}
    # The lead follows the conversation: whoever ends up answering owns the client.
    if number.crm.reassign_lead_on_transfer and lead.get("entity") == "lead" and lead.get("id"):
        await crm.assign_lead(str(lead["id"]), employee_id)


async def call_finished(call: Call, record: dict[str, Any]) -> None:
    crm = call.services.crm
    info = getattr(call, "crm_info", None)
    if crm is None or info is None:
        return
    recording = record.get("recording") or {}
    path = None
    if recording.get("file"):
        path = str(call.config.storage.recordings) + "/" + recording["file"]
    await crm.notify_finished(
        info,
        duration=int(record.get("duration") or 0),
        disposition=str(record.get("disposition")),
        rating=record.get("rating"),
        recording_path=path,
    )


async def crm_responsible(call: Call, routing: Any) -> bool:
    """Step 7: a caller known to the CRM rings its responsible employee first."""
    crm = call.services.crm
    if crm is None or not call.record.caller:
        return False
    entity = await crm.lookup(call.record.caller)
    employee_id = entity.responsible if entity else None
    if employee_id is None or employee_id not in call.config.employees:
        return False
    if routing.skip_absent_employees:
        state = await call.services.db(call.services.store.get_workday, employee_id)
        if state != "working":
            log.info("call %s: responsible %s is absent", call.record.id, employee_id)
            return False
    call.step(f"crm_responsible:{employee_id}")
    ring_time = routing.extension_dialing.ring_time
    reach = await ring_employee(call, employee_id, ring_time=ring_time)
    if reach is not Reach.NOT_REACHED:
        return True
    match routing.crm_responsible.no_answer:
        case "forward_to_mobile":
            return await forward_to_mobile(call, employee_id) is not Reach.NOT_REACHED
        case "voicemail":
            await leave_voicemail(call, employee_id)
            return True
    return False  # queue: the flow goes on to step 8
