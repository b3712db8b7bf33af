"""Where the call flow meets the CRM (SPEC section 4 step 7; leads; the call journal).

Every hook goes through CrmService, which never raises and never waits longer than
`crm.timeout`: a slow or broken CRM routes the call as for an unknown caller.
"""

from __future__ import annotations

import logging

from ...crm import CallInfo, CrmService
from ...policy.queue import may_ring, workday_of
from ...store import CallDetails
from ..core.call import Call

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
    """Report the call and create its lead per `create_lead`, beside the routing: a slow
    CRM never adds its timeout to the caller's wait (the responsible look-up, the one
    routing needs, has its own). The call's details wait for it (Call.before_details)."""
    crm = call.services.crm
    if crm is None or not phone:
        return
    call.crm_info = call_info(call, direction=direction, phone=phone)
    call.before_details(_lead_then_register(call, crm, direction=direction, phone=phone))


async def _lead_then_register(call: Call, crm: CrmService, *, direction: str, phone: str) -> None:
    number = call.config.numbers[call.record.number]
    # The lead first: the call registered next is bound to it (CRM_ENTITY_*), so the
    # CRM neither shows an unbound call nor makes a second lead of its own.
    call.record.crm = await crm.lead_for_call(
        number_cfg=number, phone=phone, direction=direction, call=call.crm_info
    )
    # numcfg's lead rules (exceptions, one lead per caller) made or found the lead:
    # CRM_CREATE would have the CRM make a second one.
    await crm.notify_started(call.crm_info, create_crm=False)


async def employee_answered(call: Call, employee_id: str) -> None:
    crm = call.services.crm
    info = getattr(call, "crm_info", None)
    if crm is None or info is None:
        return
    await call.details_ready()  # the lead is known before it is reassigned
    await crm.notify_answered(info, employee_id)
    number = call.config.numbers[call.record.number]
    lead = call.record.crm or {}
    # The lead follows the conversation: whoever ends up answering owns the client.
    if number.crm.reassign_lead_on_transfer and lead.get("entity") == "lead" and lead.get("id"):
        await crm.assign_lead(str(lead["id"]), employee_id)


async def call_finished(call: Call, details: CallDetails) -> None:
    crm = call.services.crm
    info = getattr(call, "crm_info", None)
    if crm is None or info is None:
        return
    recording = details.recording or {}
    path = None
    if recording.get("file"):
        path = str(call.config.storage.recordings) + "/" + recording["file"]
    await crm.notify_finished(
        info,
        duration=details.duration or 0,
        disposition=details.disposition.value,
        rating=details.rating,
        recording_path=path,
    )


class CrmJournal:
    """The CRM's journal of a call, as a call observer (registered by app.py)."""

    async def employee_answered(self, call: Call, employee_id: str) -> None:
        await employee_answered(call, employee_id)

    async def finished(self, call: Call, details: CallDetails) -> None:
        await call_finished(call, details)


async def crm_responsible(call: Call) -> str | None:
    """Step 7's fact: the caller's responsible employee in the CRM, when she may be rung
    (configured, and working when absent employees are skipped); else None."""
    crm = call.services.crm
    if crm is None or not call.record.caller:
        return None
    entity = await crm.lookup(call.record.caller)
    employee_id = entity.responsible if entity else None
    if employee_id is None or employee_id not in call.config.employees:
        return None
    routing = call.config.numbers[call.record.number].routing
    if routing.skip_absent_employees:
        last = call.services.runtime.last_workdays.get(employee_id)
        state = await call.services.db_or(last, call.services.store.people.workday, employee_id)
        if not may_ring(workday=workday_of(state), on_call=False, skip_absent=True):
            log.info("call %s: responsible %s is absent", call.record.id, employee_id)
            return None
    call.step(f"crm_responsible:{employee_id}")
    return employee_id
