"""Workday feature codes dialed from an employee's phone (SPEC section 2)."""

from __future__ import annotations

import logging

from ..ari.events import Channel
from ..lifecycle import LifecycleError
from ..policy.types import Disposition
from .core.call import Call

log = logging.getLogger("numcfg.calls")


def employee_of_channel(call: Call, channel: Channel) -> str | None:
    """The employee whose `endpoint` this channel belongs to (PJSIP/101-00000a1 ->
    PJSIP/101), else the one whose extension is the caller ID (Local channels, or
    phones whose endpoint name differs from the extension)."""
    technology_resource = channel.name.rsplit("-", 1)[0]
    for employee_id, employee in call.config.employees.items():
        if employee.endpoint == technology_resource:
            return employee_id
    if channel.caller_number:
        return call.config.employee_by_extension(channel.caller_number)
    return None


async def run_workday(call: Call, action: str, channel: Channel) -> None:
    set_workday = call.services.set_workday
    employee_id = employee_of_channel(call, channel)
    call.record.disposition = Disposition.FAILED
    if employee_id is None:
        log.warning("workday %s from %s: no employee owns this phone", action, channel.name)
        await call.answer()
        await call.play("sound:beeperr")
        return
    call.record.employee = employee_id
    await call.answer()
    if set_workday is None:
        log.error("workday %s: no workday service wired", action)
        return
    try:
        view = await call.services.db(
            set_workday, call.services.store, call.config, employee_id, action
        )
    except LifecycleError as exc:
        log.info("workday %s refused for %s: %s", action, employee_id, exc)
        await call.play("sound:beeperr")
        return
    log.info("workday: %s is now %s", employee_id, view.get("workday"))
    call.record.disposition = Disposition.ANSWERED
    await call.play("sound:beep")
