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


async def test_the_bitrix24_call_is_registered_bound_to_the_lead_made_for_it(
    start_engine_app: StartEngine, portal: tuple[FakeBitrix, FakeServer]
) -> None:
    """The lead comes first, so the call registered next carries it (CRM_ENTITY_*), and
    Bitrix24 is not asked to create a lead of its own (CRM_CREATE=0): one lead per call."""
    bitrix, server = portal
    engine = await start_engine_app(
        {
            "crm": {"backend": "bitrix24", "url": f"{server.url}/rest/1/code/", "timeout": 2},
            "numbers": {"paris": {"crm": {"create_lead": "incoming"}}},
        }
    )
    caller = await engine.incoming()
    await engine.wait_for(
        lambda: server.by_method("telephony.externalcall.register") or None, 5, "register"
    )
    await engine.hangup(caller)
    (call,) = await engine.calls_done()
    methods = server.methods()
    assert methods.index("crm.lead.add") < methods.index("telephony.externalcall.register")
    (register,) = server.by_method("telephony.externalcall.register")
    assert register.json["CRM_ENTITY_TYPE"] == "LEAD"
    assert str(register.json["CRM_ENTITY_ID"]) == str(bitrix.next_lead)
    assert int(register.json["CRM_CREATE"]) == 0
    assert call["crm"] == {"entity": "lead", "id": str(bitrix.next_lead), "created": True}
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
