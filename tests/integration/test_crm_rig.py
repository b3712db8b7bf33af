"""CRM integration on the real rig (issue 6): responsible routing, leads, a CRM that
fails never blocks a call, and a whole call reported to a Bitrix24 portal."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from tests.unit.crm_fakes import FakeBitrix, FakeServer

from .harness import Employee, Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

KNOWN = "+33612345678"


def crm_config(**number_crm: object) -> dict:
    return {
        "queues": {
            "sales": {
                "members": ["anna", "boris"],
                "distribution": "in_order",
                "ring_time": 3,
                "max_wait": 10,
            }
        },
        "numbers": {
            "paris": {
                "number": "+33185000000",
                "routing": {
                    "greeting": None,
                    "crm_responsible": {"enabled": True, "no_answer": "queue"},
                    "queue": "sales",
                },
                "crm": {"create_lead": "never", **number_crm},
            }
        },
    }


async def working(app, *names: str) -> None:
    for name in names:
        await asyncio.to_thread(app.store.people.set_workday, name, "working")


def rung(harness: Harness) -> list[str]:
    return [
        e["args"][1]
        for e in harness.events
        if e.get("type") == "StasisStart" and e.get("args", [None])[0] == "employee"
    ]


async def test_known_caller_rings_the_responsible_employee_first(harness: Harness, numcfg) -> None:
    app = await numcfg(crm_config())
    await working(app, "anna", "boris")
    await asyncio.to_thread(
        app.store.crm.add_contact, name="Client", phone=KNOWN, responsible="boris"
    )
    harness.employees["102"] = Employee("answer", answer_after=0.2, hangup_after=0.5)
    leg = await harness.call("+33185000000", caller=KNOWN)
    await harness.ended(leg, timeout=20)
    (call,) = await calls_done(app)
    assert rung(harness) == ["102"]  # not anna, the queue's first member
    assert call["route"] == ["crm_responsible:boris", "employee:boris"]


async def test_responsible_not_answering_falls_back_to_the_queue(harness: Harness, numcfg) -> None:
    app = await numcfg(crm_config())
    await working(app, "anna", "boris")
    await asyncio.to_thread(
        app.store.crm.add_contact, name="Client", phone=KNOWN, responsible="boris"
    )
    harness.employees["102"] = Employee("ignore")
    harness.employees["101"] = Employee("answer", answer_after=0.2, hangup_after=0.5)
    leg = await harness.call("+33185000000", caller=KNOWN)
    await harness.ended(leg, timeout=30)
    (call,) = await calls_done(app)
    assert call["route"] == ["crm_responsible:boris", "queue:sales", "employee:anna"]


async def test_unknown_caller_creates_exactly_one_lead_with_the_source(
    harness: Harness, numcfg
) -> None:
    app = await numcfg(crm_config(create_lead="incoming", lead_source="WEB"))
    await working(app, "anna")
    harness.employees["101"] = Employee("answer", answer_after=0.2, hangup_after=0.3)
    for _ in range(2):
        leg = await harness.call("+33185000000", caller="+33698000001")
        await harness.ended(leg, timeout=20)
        await calls_done(app)
    leads = await asyncio.to_thread(app.store.crm.leads)
    assert [(lead.phone, lead.source) for lead in leads] == [("+33698000001", "WEB")]
    second, first = await calls_done(app)
    assert first["crm"] == {"entity": "lead", "id": leads[0].id, "created": True}
    assert second["crm"]["created"] is False


async def test_exception_number_creates_no_lead(harness: Harness, numcfg) -> None:
    app = await numcfg(
        crm_config(create_lead="both", exceptions=["+33698000002"], lead_source="CALL")
    )
    leg = await harness.call("+33185000000", caller="+33698000002")
    await harness.ended(leg, timeout=20)
    (call,) = await calls_done(app)
    assert await asyncio.to_thread(app.store.crm.leads) == []
    assert call["crm"] is None


@pytest.mark.parametrize("fault", ["slow", "error"])
async def test_failing_crm_still_reaches_the_queue_within_its_timeout(
    harness: Harness, numcfg, fault: str
) -> None:
    async def answer(_seen) -> web.Response:
        if fault == "slow":
            await asyncio.sleep(5)
        return web.Response(status=500, text="boom")

    server = await FakeServer(answer).start()
    try:
        config = crm_config()
        config["crm"] = {"backend": "webhook", "url": server.url + "/hook", "timeout": 1.0}
        app = await numcfg(config)
        await working(app, "anna")
        harness.employees["101"] = Employee("answer", answer_after=0.2, hangup_after=0.3)
        started = time.monotonic()
        leg = await harness.call("+33185000000", caller=KNOWN)
        await harness.employee_rung("101")
        assert time.monotonic() - started < 1.0 + 1.0
        await harness.ended(leg, timeout=20)
        (call,) = await calls_done(app)
        assert call["route"] == ["queue:sales", "employee:anna"]
        assert call["disposition"] == "answered"
    finally:
        await server.stop()


async def test_bitrix24_portal_sees_register_finish_and_the_recording(
    harness: Harness, numcfg
) -> None:
    portal = FakeBitrix()
    server = await FakeServer(portal.answer).start()
    try:
        config = crm_config(create_lead="incoming", lead_source="CALL")
        config["numbers"]["paris"]["recording"] = {"record_all": True, "warning": False}
        config["numbers"]["paris"]["rating"] = True
        config["crm"] = {"backend": "bitrix24", "url": server.url + "/rest/1/abc/", "timeout": 2.0}
        config["employees"] = {"anna": {"crm_user_id": "7"}}
        app = await numcfg(config)
        await working(app, "anna")
        harness.employees["101"] = Employee("answer", answer_after=0.2, hangup_after=2.0)
        leg = await harness.call("+33185000000", caller="+33698000003")
        await harness.heard(leg, "sound:numcfg/en/rating", timeout=20)
        await harness.press(leg, "5")
        await harness.ended(leg, timeout=20)
        (call,) = await calls_done(app)
        await app.crm.drain()
        # Registered with anna's card as her phone rang (one batch request).
        (register,) = portal.calls.values()
        assert register["PHONE_NUMBER"] == "+33698000003"
        assert register["LINE_NUMBER"] == "+33185000000"
        assert int(register["TYPE"]) == 2  # Bitrix24: 1 outgoing, 2 incoming
        assert [(what, user) for _, what, user in portal.cards] == [("show", "7")]
        (finish,) = server.by_method("telephony.externalcall.finish")
        assert str(finish.json["USER_ID"]) == "7"  # anna's crm_user_id
        assert str(finish.json["STATUS_CODE"]) == "200"
        assert int(finish.json["VOTE"]) == 5
        assert int(finish.json["DURATION"]) >= 1
        (attach,) = server.by_method("telephony.externalCall.attachRecord")
        assert attach.json["FILENAME"].endswith(".wav")
        assert call["crm"]["entity"] == "lead" and call["crm"]["created"] is True
        assert call["rating"] == 5
    finally:
        await server.stop()
