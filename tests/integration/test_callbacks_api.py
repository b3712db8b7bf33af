"""Callbacks of missed calls, and the call details over the API and CLI, on the rig."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from asterisk_bridge.cli import main as numcfg_main

from .harness import Employee, Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

API = "http://127.0.0.1:18090"
AUTH = {"Authorization": "Bearer test-token"}


async def test_missed_call_is_called_back_by_a_free_employee(harness: Harness, numcfg) -> None:
    app = await numcfg(
        {
            "queues": {"sales": {"members": ["anna"], "ring_time": 2, "max_wait": 2}},
            "numbers": {
                "paris": {
                    "number": "+33185000000",
                    "routing": {"greeting": None, "queue": "sales"},
                    "callback": {"attempts": 2, "delay": 1},
                }
            },
        }
    )
    leg = await harness.call("+33185000000", caller="+33612345678")  # nobody is working
    await harness.ended(leg, timeout=20)
    (missed,) = await calls_done(app)
    assert missed["disposition"] == "missed"
    (job,) = await asyncio.to_thread(app.store.callbacks.jobs)
    assert (job.phone, job.reason) == ("+33612345678", "missed")

    harness.employees["101"] = Employee("answer", answer_after=0.2)
    harness.trunk_hangup_after = 1.0
    await asyncio.to_thread(app.store.people.set_workday, "anna", "working")
    await harness.employee_rung("101", timeout=15)
    trunk = await harness.trunk_rung("+33612345678", timeout=15)
    assert trunk["channel"]["caller"]["number"] == "+33185000000"
    deadline = time.monotonic() + 20
    while (await asyncio.to_thread(app.store.callbacks.jobs))[0].status != "done":
        assert time.monotonic() < deadline, "callback job never completed"
        await asyncio.sleep(0.2)
    callback = next(c for c in await calls_done(app) if c["direction"] == "callback")
    assert callback["employee"] == "anna"
    assert callback["disposition"] == "answered"
    assert callback["route"] == ["employee:anna", "forward:+33612345678"]


async def test_call_details_over_the_api_and_the_cli(harness: Harness, numcfg, capsys) -> None:
    app = await numcfg()
    leg = await harness.call("+33185000000", caller="+33612345678")
    await harness.ended(leg)
    (call,) = await calls_done(app)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{API}/api/calls") as resp:
            assert resp.status == 401
        async with http.get(f"{API}/api/calls?number=paris&limit=5", headers=AUTH) as resp:
            body = await resp.json()
        assert [c["id"] for c in body["calls"]] == [call["id"]]
        async with http.get(f"{API}/api/calls/{call['id']}", headers=AUTH) as resp:
            detail = await resp.json()
        assert detail["route"] == ["greeting", "hangup"]
        assert detail["caller"] == "+33612345678"
        assert detail["callee"] == "+33185000000"
        async with http.get(f"{API}/api/calls?since=yesterday", headers=AUTH) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["code"] == "bad_since"
        async with http.get(f"{API}/api/calls/{call['id']}/recording", headers=AUTH) as resp:
            assert resp.status == 404
        async with http.get(f"{API}/metrics") as resp:
            assert 'numcfg_calls_total{disposition="missed"} 1.0' in await resp.text()
    assert numcfg_main(["calls", "-c", str(app.config_holder.path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["calls"][0]["id"] == call["id"]
