"""The engine and the CRM: what Bitrix24 is told, and in which order, during a call.
The real App against the fake ARI and a local Bitrix24 stand-in (tests/unit/crm_fakes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakeari.engine import StartEngine
from tests.unit.crm_fakes import FakeBitrix, FakeServer

pytest_plugins = ["tests.fakeari.fixtures", "tests.fakeari.engine_fixtures"]


@pytest.fixture
async def portal() -> AsyncIterator[tuple[FakeBitrix, FakeServer]]:
    bitrix = FakeBitrix()
    server = await FakeServer(bitrix.answer).start()
    try:
        yield bitrix, server
    finally:
        await server.stop()


async def test_bitrix24_makes_the_unknown_callers_lead_when_the_call_is_registered(
    start_engine_app: StartEngine, portal: tuple[FakeBitrix, FakeServer]
) -> None:
    """One lead per unknown caller, from one side: the call is registered with CRM_CREATE
    and the number's lead_source (CRM_SOURCE), numcfg adds no lead of its own, and the lead
    the portal made lands in the call's details."""
    bitrix, server = portal
    engine = await start_engine_app(
        {
            "crm": {"backend": "bitrix24", "url": f"{server.url}/rest/1/code/", "timeout": 2},
            "numbers": {"paris": {"crm": {"create_lead": "incoming", "lead_source": "WEB"}}},
        }
    )
    caller = await engine.incoming()
    await engine.wait_for(
        lambda: server.by_method("crm.duplicate.findbycomm") or None, 5, "the look-up"
    )
    await engine.hangup(caller)
    (call,) = await engine.calls_done()
    await engine.app.crm.drain()
    await engine.wait_for(
        lambda: engine.app.store.calls.get(call["id"]).crm or None, 5, "the lead in the details"
    )
    assert "crm.lead.add" not in server.methods()
    (register,) = server.by_method("telephony.externalcall.register")
    assert int(register.json["CRM_CREATE"]) == 1
    assert register.json["CRM_SOURCE"] == "WEB"
    (lead,) = bitrix.lead_of_phone(register.json["PHONE_NUMBER"])
    assert lead["SOURCE_ID"] == "WEB"
    saved = engine.app.store.calls.get(call["id"])
    assert saved.crm == {"entity": "lead", "id": str(bitrix.next_lead), "created": True}
    await asyncio.sleep(0)
    await engine.assert_idle()


async def test_a_refused_webhook_makes_ready_say_what_to_fix(
    start_engine_app: StartEngine, portal: tuple[FakeBitrix, FakeServer]
) -> None:
    bitrix, server = portal
    bitrix.refuse("", "WRONG_AUTH_TYPE")
    engine = await start_engine_app(
        {
            "crm": {"backend": "bitrix24", "url": f"{server.url}/rest/1/code/", "timeout": 2},
            "numbers": {"paris": {"crm": {"create_lead": "incoming"}}},
        }
    )
    caller = await engine.incoming()
    await engine.wait_for(lambda: engine.app.crm.problem, 5, "the CRM problem to show")
    await engine.hangup(caller)
    await engine.calls_done()
    async with aiohttp.ClientSession() as http:
        base = f"http://{engine.app.config_holder.current.api.listen}"
        async with http.get(f"{base}/ready") as resp:
            ready = await resp.json()
    assert resp.status == 503 and ready["status"] == "degraded"
    assert any(reason.startswith("CRM refuses numcfg:") for reason in ready["reasons"])


async def test_a_lead_numcfg_makes_gets_the_employee_who_answers_as_its_responsible(
    start_engine_app: StartEngine,
) -> None:
    """The builtin CRM makes the lead when the call starts, before anyone answered; the
    employee who takes the call becomes its responsible (reassign_lead_on_transfer off)."""
    engine = await start_engine_app({"numbers": {"paris": {"crm": {"create_lead": "incoming"}}}})
    engine.working("anna")
    caller = await engine.incoming()
    leg = await engine.next_leg()
    await engine.answer_leg(leg)
    await engine.wait_bridged(caller, leg)
    await engine.hangup(caller)
    (call,) = await engine.calls_done()
    (lead,) = engine.app.store.crm.leads()
    assert call["crm"] == {"entity": "lead", "id": lead.id, "created": True}
    assert lead.responsible == "anna"
    await engine.assert_idle()
