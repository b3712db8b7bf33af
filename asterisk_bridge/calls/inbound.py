"""Incoming calls on a configured number: SPEC section 4, steps 1 to 11, in order."""

from __future__ import annotations

import logging
from typing import Any

from .call import Call

log = logging.getLogger("numcfg.calls")


def number_language(number: Any) -> str:
    language = getattr(number, "language", None)
    if language:
        return str(language)
    hold = getattr(number, "hold_music", None)
    return str(getattr(hold, "language", None) or "en")


async def run_inbound(call: Call, number_id: str) -> None:
    config = call.config
    number = config.numbers.get(number_id)
    call.record.number = number_id if number is not None else None
    if number is None or await _out_of_service(call, number_id):
        # Step 1: unknown or disconnected number.
        log.info("call %s: number %r not in service", call.record.id, number_id)
        await call.answer()
        await call.play_prompt("not-in-service")
        call.step("hangup")
        call.record.disposition = "failed"
        return
    call.record.callee = number.number
    call.lang = number_language(number)
    if not await call.answer():
        call.record.disposition = "abandoned"
        return
    routing = number.routing
    if routing.greeting:
        call.step("greeting")
        await call.play(routing.greeting)
    if call.hung_up:
        call.record.disposition = "abandoned"
        return
    call.step("hangup")
    call.record.disposition = "missed"


async def _out_of_service(call: Call, number_id: str) -> bool:
    try:
        state = await call.services.db(call.services.store.get_number_state, number_id)
    except Exception:
        # The store being down must not take the line down with it.
        log.exception("number state lookup failed; treating %s as active", number_id)
        return False
    return (state or {}).get("status") == "disconnected"
