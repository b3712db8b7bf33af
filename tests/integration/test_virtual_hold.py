"""Virtual hold on the rig (SPEC section 9, issue 11): a queue caller presses the key,
hangs up, keeps her place, and is called back when it is her turn, a free employee first,
then her number through the trunk; a restart of numcfg in between loses nothing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from asterisk_bridge.app import App
from asterisk_bridge.calls import virtual_hold
from asterisk_bridge.store import CallbackJob

from .harness import CallerLeg, Employee, Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

OFFER = "sound:numcfg/en/virtual-hold-offer"
CONFIRM = "sound:numcfg/en/virtual-hold-confirm"
# Past the queue's `after` (1 s) with a margin for a busy machine: an offer would have come.
NO_OFFER_SECONDS = 3.0
CLIENT = "+33611000001"
OTHER = "+33611000002"


def held_queue(**hold: object) -> dict[str, Any]:
    return {
        "queues": {
            "sales": {
                "members": ["anna"],
                "distribution": "in_order",
                "ring_time": 5,
                "max_wait": 120,
                "virtual_hold": {"key": "1", "after": 1, **hold},
            }
        },
        "numbers": {
            "paris": {
                "number": "+33185000000",
                "routing": {"greeting": None, "queue": "sales"},
                "callback": {"attempts": 2, "delay": 1},
            }
        },
    }


async def jobs(app: App) -> list[CallbackJob]:
    return await asyncio.to_thread(app.store.callbacks.jobs)


async def take_the_offer(harness: Harness, caller: str) -> CallerLeg:
    """A caller waits (nobody is working), hears the offer, presses 1, hears the
    confirmation and is hung up on."""
    leg = await harness.call("+33185000000", caller=caller)
    await harness.heard(leg, OFFER, timeout=15)
    await harness.press(leg, "1")
    await harness.heard(leg, CONFIRM)
    await harness.ended(leg)
    return leg


async def in_the_queue(harness: Harness, leg: CallerLeg) -> None:
    """numcfg answered the caller (the queue answers first, then plays hold music)."""
    await harness.wait_for(
        lambda e: e.get("type") == "StasisStart" and e["channel"]["id"] == leg.caller_id,
        what="the caller to be answered",
    )


def employee_rings(harness: Harness) -> list[dict[str, Any]]:
    return [
        e
        for e in harness.events
        if e.get("type") == "StasisStart" and e.get("args") == ["employee", "101"]
    ]


async def job_done(app: App, job_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        job = next(j for j in await jobs(app) if j.id == job_id)
        if job.status == "done":
            return
        assert time.monotonic() < deadline, f"callback ended {job.status}, not done"
        await asyncio.sleep(0.2)


async def test_a_kept_place_is_called_back_employee_first_across_a_restart(
    harness: Harness, numcfg
) -> None:
    app = await numcfg(held_queue())
    await take_the_offer(harness, CLIENT)
    (first,) = await calls_done(app)
    assert first["disposition"] == "callback_requested"
    assert first["route"] == ["queue:sales", "virtual_hold"]
    (job,) = await jobs(app)
    assert (job.phone, job.queue, job.call_id, job.reason) == (
        CLIENT,
        "sales",
        first["id"],
        "virtual_hold",
    )
    assert job.status == "pending" and job.attempts == 2 and job.delay == 1

    # numcfg stops and a new one starts on the same store: the place is still there.
    await app.drain(timeout=10)
    await app.stop()
    restarted = App(app.config_holder.path)
    await restarted.start()
    try:
        assert await restarted.stream.wait_connected(10)
        harness.employees["101"] = Employee("answer", answer_after=0.2)
        harness.trunk_hangup_after = 1.0
        await asyncio.to_thread(restarted.store.people.set_workday, "anna", "working")
        rung = await harness.employee_rung("101", timeout=15)
        trunk = await harness.trunk_rung(CLIENT, timeout=15)
        assert rung["_t"] < trunk["_t"]  # the employee first, then the client
        assert rung["channel"]["caller"]["number"] == CLIENT  # she sees whom she calls back
        assert trunk["channel"]["caller"]["number"] == "+33185000000"
        await job_done(restarted, job.id)
        callback = next(c for c in await calls_done(restarted) if c["direction"] == "callback")
        assert callback["callback_of"] == first["id"]
        assert callback["employee"] == "anna" and callback["disposition"] == "answered"
        assert callback["route"] == ["employee:anna", f"forward:{CLIENT}"]
    finally:
        await restarted.drain(timeout=10)
        await restarted.stop()


async def test_the_kept_place_is_served_before_a_caller_who_came_later(
    harness: Harness, numcfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Kept places are looked at less often than a caller on the line re-checks (3 s): if
    # the line did not count the kept place, the later caller would take anna first.
    monkeypatch.setattr(virtual_hold, "HELD_SCAN_SECONDS", 6.0)
    app = await numcfg(held_queue())
    await take_the_offer(harness, CLIENT)
    (held,) = await jobs(app)
    later = await harness.call("+33185000000", caller=OTHER)
    # She hears the offer to its end (the key), does not press, and waits on the line.
    await harness.wait_for(
        lambda e: (
            e.get("type") == "PlaybackFinished"
            and e["playback"]["target_uri"] == f"channel:{later.far_id}"
            and e["playback"]["media_uri"] == "sound:numcfg/en/number-1"
        ),
        what="the later caller to hear the whole offer",
    )
    harness.employees["101"] = Employee("answer", answer_after=0.2)
    harness.trunk_hangup_after = 1.0
    await asyncio.to_thread(app.store.people.set_workday, "anna", "working")
    await harness.trunk_rung(CLIENT, timeout=15)
    await harness.bridged(later, timeout=30)  # anna takes the later caller after the callback
    await harness.hangup(later)
    await harness.ended(later)
    await job_done(app, held.id)
    # anna's first ring was the callback (the client's number), the second the later caller.
    assert [e["channel"]["caller"]["number"] for e in employee_rings(harness)] == [CLIENT, OTHER]
    calls = {c["caller"]: c for c in await calls_done(app) if c["direction"] == "incoming"}
    assert calls[OTHER]["disposition"] == "answered"
    assert calls[OTHER]["route"] == ["queue:sales", "employee:anna"]


async def test_no_offer_for_a_caller_outside_the_allowlist(harness: Harness, numcfg) -> None:
    app = await numcfg(held_queue())
    foreign = "+4915112345678"  # the rig's allowlist is +33*
    leg = await harness.call("+33185000000", caller=foreign)
    await in_the_queue(harness, leg)
    # An offer not made can only be seen as time passing: the offer would come at 1 s.
    await asyncio.sleep(NO_OFFER_SECONDS)
    await harness.client.send_dtmf(leg.caller_id, "1", between_ms=150)
    await asyncio.sleep(1)
    assert OFFER not in harness.media_heard(leg)
    await harness.hangup(leg)
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["disposition"] == "abandoned"
    assert "virtual_hold" not in call["route"]
    assert await jobs(app) == []  # and no callback of any kind to a number outside it


async def test_a_caller_with_a_kept_place_gets_no_second_callback(harness: Harness, numcfg) -> None:
    app = await numcfg(held_queue())
    await take_the_offer(harness, CLIENT)
    again = await harness.call("+33185000000", caller=CLIENT)
    await in_the_queue(harness, again)
    await asyncio.sleep(NO_OFFER_SECONDS)  # past `after`: no offer, she has a callback already
    await harness.client.send_dtmf(again.caller_id, "1", between_ms=150)
    await asyncio.sleep(1)
    assert OFFER not in harness.media_heard(again)
    await harness.hangup(again)  # and hanging up makes no missed-call callback either
    await harness.ended(again)
    second = next(c for c in await calls_done(app) if c["disposition"] != "callback_requested")
    assert second["disposition"] == "abandoned"
    (job,) = await jobs(app)
    assert job.reason == "virtual_hold"
