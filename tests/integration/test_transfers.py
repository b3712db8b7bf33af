"""Transfers on the real rig (issue 10, SPEC section 8): a SIP REFER from a desk phone over
PJSIP on loopback, the employee's keypad codes, and the API."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .harness import CallerLeg, Employee, Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

API = "http://127.0.0.1:18090"
AUTH = {"Authorization": "Bearer test-token"}
# Anna's desk is a SIP phone (pjsip.conf "phones" -> the harness's "desk-phones").
SIP_ANNA = {"endpoint": "PJSIP/101@phones"}


def transfer_config(*, anna: dict[str, Any] | None = None, **number: Any) -> dict[str, Any]:
    return {
        "asterisk": {"transfer_ring_time": 3},
        "employees": {"anna": anna or {}},
        "queues": {
            "sales": {"members": ["anna"], "ring_time": 5, "max_wait": 20},
            "support": {"members": ["boris"], "ring_time": 5, "max_wait": 20},
        },
        "numbers": {
            "paris": {
                "number": "+33185000000",
                "routing": {"greeting": None, "queue": "sales"},
                **number,
            }
        },
    }


async def working(app: Any, *names: str) -> None:
    for name in names:
        await asyncio.to_thread(app.store.people.set_workday, name, "working")


async def talking_to_anna(harness: Harness, app: Any) -> CallerLeg:
    await working(app, "anna", "boris", "chloe")
    harness.employees["101"] = Employee("answer", answer_after=0.2)
    leg = await harness.call("+33185000000")
    await harness.employee_rung("101")
    await harness.bridged(leg)
    return leg


async def partner_of(harness: Harness, leg: CallerLeg) -> list[str]:
    """The names of the channels in the caller's bridge, the caller's own excepted."""
    bridge = await harness.bridge_of(leg.far_id)
    if bridge is None:
        return []
    channels = [c for c in await harness.client.list_channels() if c["id"] in bridge["channels"]]
    return [c["name"] for c in channels if c["id"] != leg.far_id]


async def until(check: Any, what: str, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def talks_to(harness: Harness, leg: CallerLeg, prefix: str) -> None:
    async def check() -> bool:
        names = await partner_of(harness, leg)
        return len(names) == 1 and names[0].startswith(prefix)

    await until(check, f"the caller to talk to {prefix}")


async def one_call(app: Any) -> dict[str, Any]:
    (call,) = await calls_done(app, timeout=30)
    return call


def transfer_fields(call: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(t["from"], t["to"], t["mode"], t["result"], t["via"]) for t in call["transfers"]]


# -- SIP REFER from the employee's phone ----------------------------------------------------


async def test_blind_refer_to_an_extension_that_answers(harness: Harness, numcfg) -> None:
    app = await numcfg(transfer_config(anna=SIP_ANNA))
    leg = await talking_to_anna(harness, app)
    (anna_phone,) = harness.employee_channels["101"]
    harness.employees["102"] = Employee("answer", answer_after=0.5)
    await harness.refer("101", "102")
    await harness.employee_rung("102")
    await talks_to(harness, leg, "Local/102@numcfg-test-employees")
    # The phone was told the transfer worked (NOTIFY 200: Transfer() returned SUCCESS and
    # hung up at once, where a refusal would have kept it on the line).
    await harness.wait_for(
        lambda e: e.get("type") == "ChannelDestroyed" and e["channel"]["id"] == anna_phone,
        what="anna's phone to hang up after the transfer",
    )
    await harness.hangup(leg)
    call = await one_call(app)
    assert transfer_fields(call) == [("anna", "102", "blind", "answered", "phone")]
    assert call["route"] == ["queue:sales", "employee:anna", "transfer:boris", "employee:boris"]
    assert call["employee"] == "boris" and call["disposition"] == "answered"


async def test_blind_refer_nobody_answers_caller_back_with_the_transferer(
    harness: Harness, numcfg
) -> None:
    app = await numcfg(transfer_config(anna=SIP_ANNA))
    leg = await talking_to_anna(harness, app)
    harness.employees["102"] = Employee("ignore")
    await harness.refer("101", "102")
    await harness.employee_rung("102")
    # boris rings out (transfer_ring_time 3 s); the phone, told 603, stays on the line.
    await harness.wait_for(
        lambda e: (
            e.get("type") == "ChannelDestroyed"
            and e["channel"]["id"] == harness.employee_channels["102"][0]
        ),
        what="boris to stop ringing",
    )
    await talks_to(harness, leg, "PJSIP/phones-")
    await harness.hangup(leg)
    call = await one_call(app)
    assert transfer_fields(call) == [("anna", "102", "blind", "no_answer", "phone")]
    assert call["employee"] == "anna"
    assert call["route"] == ["queue:sales", "employee:anna", "transfer:boris"]


# -- keypad codes -------------------------------------------------------------------------------


async def test_attended_by_keypad_then_completed(harness: Harness, numcfg) -> None:
    app = await numcfg(transfer_config())
    leg = await talking_to_anna(harness, app)
    harness.employees["102"] = Employee("answer", answer_after=0.3)
    await harness.employee_press("101", "*2102#")
    await harness.employee_rung("102")
    # Consulting: anna and boris talk, the caller is alone in the bridge with hold music.
    await until(lambda: _no_party(harness, leg), "the caller to be on hold during the consultation")
    await until(lambda: _consulting(harness, "101", "102"), "anna and boris to consult")
    assert await _no_party(harness, leg)
    await harness.employee_press("101", "*2")
    await talks_to(harness, leg, "Local/102@numcfg-test-employees")
    await harness.hangup(leg)
    call = await one_call(app)
    assert transfer_fields(call) == [("anna", "102", "attended", "answered", "keypad")]
    assert call["employee"] == "boris"


async def test_attended_by_keypad_then_cancelled(harness: Harness, numcfg) -> None:
    app = await numcfg(transfer_config())
    leg = await talking_to_anna(harness, app)
    harness.employees["102"] = Employee("answer", answer_after=0.3)
    await harness.employee_press("101", "*2102#")
    await harness.employee_rung("102")
    await until(lambda: _consulting(harness, "101", "102"), "anna and boris to consult")
    (boris_leg,) = harness.employee_channels["102"]
    await harness.employee_press("101", "*0")
    await harness.wait_for(
        lambda e: e.get("type") == "ChannelDestroyed" and e["channel"]["id"] == boris_leg,
        what="boris to be hung up by the cancel",
    )
    await talks_to(harness, leg, "Local/101@numcfg-test-employees")
    await harness.hangup(leg)
    call = await one_call(app)
    assert transfer_fields(call) == [("anna", "102", "attended", "cancelled", "keypad")]
    assert call["employee"] == "anna"


async def test_a_caller_pressing_the_codes_transfers_nothing(harness: Harness, numcfg) -> None:
    app = await numcfg(transfer_config())
    leg = await talking_to_anna(harness, app)
    harness.employees["102"] = Employee("answer")
    await harness.press(leg, "##102#")
    await asyncio.sleep(4.0)  # past the keypad pause: a transfer would be ringing by now
    assert "102" not in harness.employee_channels
    await talks_to(harness, leg, "Local/101@numcfg-test-employees")
    await harness.hangup(leg)
    call = await one_call(app)
    assert call["transfers"] == [] and call["employee"] == "anna"


async def _consulting(harness: Harness, transferer: str, target: str) -> bool:
    """numcfg's legs to both employees share a bridge of their own."""
    names = {c["id"]: c["name"] for c in await harness.client.list_channels()}
    wanted = {f"Local/{transferer}@numcfg-test-employees", f"Local/{target}@numcfg-test-employees"}
    for bridge in await harness.client.list_bridges():
        members = {names.get(cid, "").rsplit("-", 1)[0] for cid in bridge["channels"]}
        if members == wanted:
            return True
    return False


async def _no_party(harness: Harness, leg: CallerLeg) -> bool:
    names = await partner_of(harness, leg)
    # Bridge music on hold plays through an announcer channel, not a person.
    return all(name.startswith("Announcer/") for name in names)


# -- the API ------------------------------------------------------------------------------------


async def test_api_blind_transfer_to_a_queue_and_its_refusals(harness: Harness, numcfg) -> None:
    app = await numcfg(transfer_config())
    leg = await talking_to_anna(harness, app)
    harness.employees["102"] = Employee("answer", answer_after=0.3)
    (active,) = await asyncio.to_thread(app.store.calls.in_progress)
    async with aiohttp.ClientSession(headers=AUTH) as http:

        async def post(call_id: str, body: object) -> tuple[int, dict[str, Any]]:
            url = f"{API}/api/calls/{call_id}/transfer"
            async with http.post(url, json=body) as response:
                return response.status, await response.json()

        assert (await post("no-such-call", {"to": "boris"}))[0] == 404
        status, body = await post(active.id, {"to": "queue:nope"})
        assert (status, body["error"]["code"]) == (400, "unknown_target")
        status, body = await post(active.id, {"to": "+14155550100"})
        assert (status, body["error"]["code"]) == (400, "target_not_allowed")
        assert (await post(active.id, {"to": "boris", "mode": "sideways"}))[0] == 400
        assert app.services.runtime.conversations[active.id].call.record.transfers == []
        status, body = await post(active.id, {"to": "queue:support", "mode": "blind"})
        assert status == 202 and body["target"] == "queue:support"
        await harness.employee_rung("102")
        await talks_to(harness, leg, "Local/102@numcfg-test-employees")
        await harness.hangup(leg)
        call = await one_call(app)
        status, body = await post(call["id"], {"to": "boris"})
        assert (status, body["error"]["code"]) == (409, "not_in_conversation")
    assert transfer_fields(call) == [("anna", "queue:support", "blind", "answered", "api")]
    assert call["route"] == [
        "queue:sales",
        "employee:anna",
        "transfer:queue:support",
        "queue:support",
        "employee:boris",
    ]


# -- one call record: recording, warning, lead ----------------------------------------------


async def test_recording_spans_the_transfer_warning_once_lead_follows(
    harness: Harness, numcfg, tmp_path: Path
) -> None:
    config = transfer_config(
        recording={"record_all": True, "warning": True},
        crm={"create_lead": "incoming", "reassign_lead_on_transfer": True},
    )
    app = await numcfg(config)
    leg = await talking_to_anna(harness, app)
    started = harness.events[-1]["_t"]
    harness.employees["102"] = Employee("answer", answer_after=0.3)
    await asyncio.sleep(1.0)
    await harness.employee_press("101", "##102#")
    await talks_to(harness, leg, "Local/102@numcfg-test-employees")
    await asyncio.sleep(1.5)
    await harness.hangup(leg)
    ended = (await harness.ended(leg))["_t"]
    call = await one_call(app)
    assert transfer_fields(call) == [("anna", "102", "blind", "answered", "keypad")]
    warnings = [m for m in harness.media_heard(leg) if m.endswith("/recording-warning")]
    assert len(warnings) == 1
    # One file for the whole conversation, before and after the transfer.
    assert "parts" not in call["recording"]
    with wave.open(str(tmp_path / "recordings" / call["recording"]["file"])) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    assert abs(seconds - (ended - started)) <= 1.5
    (lead,) = await asyncio.to_thread(app.store.crm.leads)
    assert lead.responsible == "boris"
