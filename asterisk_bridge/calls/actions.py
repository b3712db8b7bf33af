"""Executing a configured action (after_hours, fallback, on_failure, IVR options)."""

from __future__ import annotations

import logging

from ..config.schema import (
    EmployeeAction,
    ForwardAction,
    HangupAction,
    MenuAction,
    QueueAction,
    RepeatAction,
    VoicemailAction,
)
from .call import Call
from .employees import Reach, ring_employee
from .forward import forward
from .voicemail import leave_voicemail

log = logging.getLogger("numcfg.calls")

# An employee chosen directly (IVR option, fallback) rings this long before voicemail,
# like extension dialing's default.
EMPLOYEE_RING_SECONDS = 20


async def execute(call: Call, action: object) -> bool:
    """Run `action`; True when the call was handled (talked, voicemail, hung up),
    False when it could not be (a refused forward): the caller's flow goes on."""
    from .menu import run_menu  # menus execute actions: import here to avoid a cycle
    from .queue import run_queue

    match action:
        case QueueAction(queue=queue_id):
            return await run_queue(call, queue_id)
        case MenuAction(menu=menu_id):
            return await run_menu(call, menu_id)
        case EmployeeAction(employee=employee_id):
            if not await call.answer():
                return True
            reach = await ring_employee(call, employee_id, ring_time=EMPLOYEE_RING_SECONDS)
            if reach is Reach.NOT_REACHED:
                await leave_voicemail(call, employee_id)
            return True
        case VoicemailAction(employee=employee_id):
            await leave_voicemail(call, employee_id)
            return True
        case ForwardAction(to=to):
            reach = await forward(call, to, step=f"forward:{to}")
            return reach is not Reach.NOT_REACHED
        case HangupAction(message=message):
            if message and await call.answer():
                await call.play(message)
            call.step("hangup")
            if call.record.disposition is None:
                call.record.disposition = "missed"
            await call.hangup()
            return True
        case RepeatAction():
            return False  # only meaningful inside a menu, which handles it itself
    log.error("call %s: unknown action %r", call.record.id, action)
    return False
