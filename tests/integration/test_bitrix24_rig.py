"""Bitrix24 on the real rig (issue 12), against the stand-in portal of tests/unit/crm_fakes:
one lead per unknown caller and the call bound to it, the call card for exactly the phones
that ring, the portal's work day, 30 calls a minute inside the portal's limit, and a
restart between register and finish."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from asterisk_bridge.store import open_store
from tests.unit.crm_fakes import FakeBitrix, FakeServer, LeakyBucket

from .conftest import install_dialplan, write_config
from .harness import Employee, Harness, calls_done
from .test_resilience import start_service

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ANNA, BORIS = "17", "18"  # anna by crm_user_id, boris by his inner number


@pytest_asyncio.fixture(loop_scope="session")
async def portal() -> AsyncIterator[tuple[FakeBitrix, FakeServer]]:
    # The cloud plans' bucket, as the portal enforces it.
    fake = FakeBitrix(limit=LeakyBucket(capacity=50, leak_per_second=2))
    fake.users[BORIS] = {"NAME": "Boris", "UF_PHONE_INNER": "102"}
    server = await FakeServer(fake.answer).start()
    yield fake, server
    await server.stop()


def config(server: FakeServer, *, members: list[str], distribution: str = "in_order") -> dict:
    return {
        "crm": {"backend": "bitrix24", "url": f"{server.url}/rest/1/abc/", "timeout": 2.0},
        "employees": {"anna": {"crm_user_id": ANNA}},
        "queues": {
            "sales": {
                "members": members,
                "distribution": distribution,
                "ring_time": 3,
                "max_wait": 12,
                "fallback": {"action": "hangup"},
            }
        },
        "numbers": {
            "paris": {
                "routing": {"greeting": None, "queue": "sales"},
                "crm": {"create_lead": "incoming", "lead_source": "CALL"},
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


async def settled(condition, timeout: float = 15.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_one_lead_per_unknown_caller_and_the_card_for_exactly_the_ringing_phones(
    harness: Harness, numcfg, portal
) -> None:
    fake, server = portal
    app = await numcfg(config(server, members=["anna", "boris"]))
    await working(app, "anna", "boris", "chloe")
    harness.employees["101"] = Employee("ignore")
    harness.employees["102"] = Employee("answer", answer_after=0.2, hangup_after=0.5)
    for _ in range(2):  # the same new caller twice
        leg = await harness.call("+33185000000", caller="+33698000011")
        await harness.ended(leg, timeout=30)
        await calls_done(app)
        await app.crm.drain()
    second, first = await calls_done(app)

    (lead,) = fake.lead_of_phone("+33698000011")
    assert lead["SOURCE_ID"] == "CALL"
    assert lead["ASSIGNED_BY_ID"] == BORIS  # who answered, not the webhook's user 1
    assert "crm.lead.add" not in server.methods()
    await settled(lambda: app.store.calls.get(first["id"]).crm is not None, what="the lead")
    assert app.store.calls.get(first["id"]).crm == {
        "entity": "lead",
        "id": lead["ID"],
        "created": True,
    }
    assert second["crm"] == {"entity": "lead", "id": lead["ID"], "created": False}
    one, two = (fake.calls[f"externalCall.{c['id']}"] for c in (first, second))
    assert str(one["CRM_CREATE"]) == "1"
    assert (str(two["CRM_CREATE"]), str(two["CRM_ENTITY_ID"])) == ("0", lead["ID"])
    # Cards: anna's phone rang and she did not take it, then boris's, who did; chloe's
    # phone never rang and she never saw the card.
    for remote in (f"externalCall.{first['id']}", f"externalCall.{second['id']}"):
        cards = [(what, user) for call_id, what, user in fake.cards if call_id == remote]
        assert cards == [("show", ANNA), ("hide", ANNA), ("show", BORIS)]
        assert fake.calls[remote]["FINISHED"]["USER_ID"] == BORIS
    assert rung(harness) == ["101", "102", "101", "102"]


async def test_an_employee_whose_portal_work_day_is_paused_is_skipped(
    harness: Harness, numcfg, portal
) -> None:
    fake, server = portal
    fake.timeman.update({ANNA: "PAUSED", BORIS: "OPENED"})
    settings = config(server, members=["anna", "boris"])
    settings["crm"]["workday"] = "bitrix24"
    app = await numcfg(settings)
    await working(app, "anna", "boris")  # numcfg's own workday would ring anna first
    await app.crm.backend.workdays.refreshed()
    harness.employees["101"] = Employee("answer", answer_after=0.2, hangup_after=0.5)
    harness.employees["102"] = Employee("answer", answer_after=0.2, hangup_after=0.5)
    leg = await harness.call("+33185000000", caller="+33698000012")
    await harness.ended(leg, timeout=30)
    (call,) = await calls_done(app)
    assert rung(harness) == ["102"]
    assert call["route"] == ["queue:sales", "employee:boris"]


async def test_thirty_calls_in_a_minute_stay_under_the_bucket_and_lose_no_journal_entry(
    harness: Harness, numcfg, portal
) -> None:
    fake, server = portal
    app = await numcfg(config(server, members=["anna"]))
    await working(app, "anna")
    harness.employees["101"] = Employee("answer", answer_after=0.1, hangup_after=0.2)
    started = time.monotonic()
    for i in range(30):
        leg = await harness.call("+33185000000", caller=f"+3369801{i:04d}")
        await harness.ended(leg, timeout=30)
    elapsed = time.monotonic() - started
    await settled(lambda: len(app.store.calls.recent(limit=50)) == 30, what="30 calls saved")
    await app.crm.drain(timeout=60)
    assert elapsed < 60
    assert fake.throttled == 0  # never refused by the portal's bucket
    assert len(fake.calls) == 30
    assert all("FINISHED" in c for c in fake.calls.values())
    assert len(fake.cards) == 30
    assert len([e for e in fake.entities if e[0] == "LEAD"]) == 30


async def test_a_restart_between_register_and_finish_still_sends_finish(
    harness: Harness, tmp_path, portal
) -> None:
    fake, server = portal
    harness.reset()
    path = write_config(tmp_path, config(server, members=["anna"]))
    install_dialplan(path)
    store = open_store(f"sqlite:///{tmp_path}/numcfg.sqlite3")
    store.people.set_workday("anna", "working")
    harness.employees["101"] = Employee("answer", answer_after=0.2)
    proc = await start_service(path)
    try:
        leg = await harness.call("+33185000000", caller="+33698000013")
        await harness.bridged(leg, timeout=20)
        await settled(lambda: len(fake.calls) == 1, what="the call registered")
        await asyncio.sleep(1.0)  # talking
        proc.kill()
        await proc.wait()
        (remote,) = fake.calls
        assert "FINISHED" not in fake.calls[remote]
        proc = await start_service(path)
        await harness.ended(leg, timeout=20)
        await settled(lambda: "FINISHED" in fake.calls[remote], timeout=20, what="finish")
        finished = fake.calls[remote]["FINISHED"]
        assert finished["USER_ID"] == ANNA
        assert finished["STATUS_CODE"] == "200"
        assert finished["DURATION"] >= 1
        assert store.crm.open_calls(f"{socket.gethostname()}/numcfg") == []
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
        store.close()


async def test_click_to_call_rings_the_employee_then_the_client(
    harness: Harness, numcfg, portal
) -> None:
    """A local application installed through /bitrix24/events; a click on a phone number
    in the CRM (OnExternalCallStart) rings anna's phone, then the client through the trunk
    showing the number's E.164, and the call the portal registered is finished."""
    fake, server = portal
    fake.url = server.url
    settings = config(server, members=["anna"])
    settings["crm"] = {
        "backend": "bitrix24",
        "auth": "app",
        "url": server.url,
        "oauth_url": f"{server.url}/oauth/token/",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "timeout": 2.0,
    }
    settings["numbers"]["paris"]["outbound"] = {"selectable": True}
    app = await numcfg(settings)
    await working(app, "anna")
    harness.employees["101"] = Employee("answer", answer_after=0.2)
    harness.trunk_hangup_after = 1.0
    events = "http://127.0.0.1:18090/bitrix24/events"
    async with aiohttp.ClientSession() as http:
        async with http.post(events, data=fake.install_form()) as resp:
            assert resp.status == 200
        click = fake.call_start_form(user_id=ANNA, phone="0612345678", line="+33185000000")
        async with http.post(events, data=click) as resp:
            assert resp.status == 200
    employee = await harness.employee_rung("101", timeout=15)
    trunk = await harness.trunk_rung("+33612345678", timeout=15)
    assert harness.events.index(employee) < harness.events.index(trunk)
    assert trunk["channel"]["caller"]["number"] == "+33185000000"
    remote = click["data[CALL_ID]"]
    await settled(lambda: "FINISHED" in fake.calls[remote], timeout=20, what="finish")
    (call,) = await calls_done(app)
    assert call["direction"] == "outgoing"
    assert call["employee"] == "anna"
    assert call["route"] == ["employee:anna", "forward:+33612345678"]
    finished = fake.calls[remote]["FINISHED"]
    assert (finished["USER_ID"], finished["STATUS_CODE"]) == (ANNA, "200")
    assert "telephony.externalcall.register" not in server.methods()  # the portal's call
    harness.trunk_hangup_after = None
