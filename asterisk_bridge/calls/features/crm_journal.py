"""Where the call flow meets the CRM (SPEC section 4 step 7; leads; the call journal).

Every hook goes through CrmService, which never raises and never waits longer than
`crm.timeout`: a slow or broken CRM routes the call as for an unknown caller.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ...crm import CallInfo, CrmService
from ...policy.queue import may_ring, workday_of
from ...store import CallDetails
from ..core.call import Call

log = logging.getLogger("numcfg.calls")


def call_info(call: Call, *, direction: str, phone: str, employee: str | None = None) -> CallInfo:
    number = call.config.numbers[call.record.number]
    return CallInfo(
        call_id=call.record.id,
        number_id=call.record.number,
        line_number=number.number,
        direction=direction,
        phone=phone,
        employee=employee or call.record.employee,
        started_at=call.record.started_at,
        add_to_chat=number.crm.add_to_chat,
    )


async def call_started(
    call: Call, *, direction: str, phone: str, employee: str | None = None
) -> None:
    """Report the call and create its lead per `create_lead`, beside the routing: a slow
    CRM never adds its timeout to the caller's wait (the responsible look-up, the one
    routing needs, has its own). The call's details wait for it (Call.before_details)."""
    crm = call.services.crm
    if crm is None or not phone:
        return
    call.crm_info = call_info(call, direction=direction, phone=phone, employee=employee)
    lead = asyncio.ensure_future(_lead_then_register(call, crm, direction=direction, phone=phone))
    call.crm_lead = lead
    call.before_details(_wait(lead))


async def call_adopted(call: Call, *, phone: str, employee: str, remote_id: str) -> None:
    """A call the CRM registered itself (click-to-call): its journal goes on from there."""
    crm = call.services.crm
    if crm is None:
        return
    call.crm_info = call_info(call, direction="outgoing", phone=phone, employee=employee)
    await crm.notify_adopted(call.crm_info, remote_id)


async def _wait(task: asyncio.Future[Any]) -> None:
    await asyncio.wait([task])


async def _lead_then_register(call: Call, crm: CrmService, *, direction: str, phone: str) -> None:
    number = call.config.numbers[call.record.number]
    # The lead first: the call registered next is bound to it (CRM_ENTITY_*), so the
    # CRM neither shows an unbound call nor makes a second lead of its own.
    call.record.crm = await crm.lead_for_call(
        number_cfg=number, phone=phone, direction=direction, call=call.crm_info
    )
    # numcfg's lead rules (exceptions, one lead per caller) made or found the lead, or
    # (Bitrix24) planned it for the CRM to make when it registers the call (CRM_CREATE):
    # never both.
    await crm.notify_started(call.crm_info, create_crm=False)
    created = crm.created_lead(call.record.id)
    if created is not None:
        created.add_done_callback(lambda done: _set_lead(call, done))


def _set_lead(call: Call, done: asyncio.Future[dict[str, Any] | None]) -> None:
    if not done.cancelled() and done.exception() is None and done.result() is not None:
        call.record.crm = done.result()


async def employee_answered(call: Call, employee_id: str) -> None:
    crm = call.services.crm
    info = getattr(call, "crm_info", None)
    if crm is None or info is None:
        return
    await crm.notify_answered(info, employee_id)
    # Off the call path: the lead may still be on its way from the CRM.
    call.before_details(_assign_lead(call, crm, employee_id))


async def _assign_lead(call: Call, crm: CrmService, employee_id: str) -> None:
    """The employee who answers owns the client: a lead made for this call gets her as its
    responsible (Bitrix24 does it itself at finish for the leads it made), and with
    reassign_lead_on_transfer any lead follows the conversation to whoever answers."""
    lead_task = getattr(call, "crm_lead", None)
    if lead_task is not None:
        await asyncio.wait([lead_task])
    number = call.config.numbers[call.record.number]
    lead = call.record.crm or {}
    if lead.get("entity") != "lead" or not lead.get("id"):
        return
    made_here = bool(lead.get("created")) and crm.telephony is None
    if made_here or number.crm.reassign_lead_on_transfer:
        await crm.assign_lead(str(lead["id"]), employee_id)


async def employees_ringing(call: Call, employee_ids: list[str]) -> None:
    """The call card pops up for these employees, whose phones ring now."""
    crm = call.services.crm
    info = getattr(call, "crm_info", None)
    if crm is not None and info is not None:
        await crm.notify_ringing(info, employee_ids)


async def employees_not_taken(call: Call, employee_ids: list[str]) -> None:
    """They rang and did not take the call: their call card closes."""
    crm = call.services.crm
    info = getattr(call, "crm_info", None)
    if crm is not None and info is not None:
        await crm.notify_not_taken(info, employee_ids)


async def forwarding(call: Call, employee_id: str | None) -> None:
    crm = call.services.crm
    info = getattr(call, "crm_info", None)
    if crm is not None and info is not None:
        await crm.notify_forwarding(info, employee_id)


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
        saved_crm=details.crm,
    )


class CrmJournal:
    """The CRM's journal of a call, as a call observer (registered by app.py)."""

    async def employee_answered(self, call: Call, employee_id: str) -> None:
        await employee_answered(call, employee_id)

    async def finished(self, call: Call, details: CallDetails) -> None:
        await call_finished(call, details)

    async def ringing(self, call: Call, employee_ids: list[str]) -> None:
        await employees_ringing(call, employee_ids)

    async def not_taken(self, call: Call, employee_ids: list[str]) -> None:
        await employees_not_taken(call, employee_ids)

    async def forwarding(self, call: Call, employee_id: str | None) -> None:
        await forwarding(call, employee_id)


async def crm_responsible(call: Call) -> str | None:
    """Step 7's fact: the caller's responsible employee in the CRM, when she may be rung
    (configured, and working when absent employees are skipped); else None."""
    crm = call.services.crm
    if crm is None or not call.record.caller:
        return None
    # The same look-up as the lead step's: a caller the CRM did not know before this call
    # has no responsible yet, whoever the lead made for the call names.
    entity = await crm.lookup_for_call(call.record.id, call.record.caller)
    employee_id = entity.responsible if entity else None
    if employee_id is None or employee_id not in call.config.employees:
        return None
    routing = call.config.numbers[call.record.number].routing
    if routing.skip_absent_employees:
        workdays = await call.services.workdays()
        state = workdays.get(employee_id)
        if not may_ring(workday=workday_of(state), on_call=False, skip_absent=True):
            log.info("call %s: responsible %s is absent", call.record.id, employee_id)
            return None
    call.step(f"crm_responsible:{employee_id}")
    return employee_id
