"""Websocket cuts while calls are up, on the real rig (issue 9).

20 cuts of numcfg's ARI websocket while 10 conversations are connected (recorded) and 10
other callers sit in a greeting, an IVR, a queue and voicemail. Some of those callers hang
up *inside* a gap, so their hangup event is lost to numcfg. Afterwards:
- every conversation is still bridged and goes on;
- every call, ended in a gap or not, has a complete record;
- nothing is left: channels, bridges, recordings, call coroutines, employee claims.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from .conftest import kill_ari_websockets
from .harness import CallerLeg, Employee, Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

CUTS = 20
CONVERSATIONS = 10
TEAM = {f"e{i}": f"3{i:02d}" for i in range(1, CONVERSATIONS + 1)}


def cut_config() -> dict:
    employees = {
        name: {"name": name, "extension": ext, "endpoint": f"Local/{ext}@numcfg-test-employees"}
        for name, ext in TEAM.items()
    }
    return {
        "employees": employees,
        "queues": {
            "team": {
                "members": list(TEAM),
                "distribution": "evenly",
                "ring_time": 10,
                "max_wait": 120,
                "fallback": {"action": "hangup"},
            },
            # Nobody of it works today: callers wait with hold music.
            "idle": {
                "members": ["chloe"],
                "ring_time": 5,
                "max_wait": 300,
                "fallback": {"action": "hangup"},
            },
        },
        "ivr_menus": {
            "slow": {
                "prompt": "sound:numcfg/en/ivr-main",
                "first_digit_timeout": 60,
                "retries": 3,
                "options": {"1": {"action": "queue", "queue": "idle"}},
                "on_failure": {"action": "hangup"},
            }
        },
        "schedules": {"never": {"timezone": "Europe/Paris", "week": {}}},
        "numbers": {
            "paris": {
                "number": "+33185000000",
                "routing": {"greeting": None, "queue": "team"},
                "recording": {"record_all": True, "warning": False},
            },
            "ivr": {"number": "+33185000001", "routing": {"ivr": "slow"}},
            "wait": {"number": "+33185000002", "routing": {"queue": "idle"}},
            "vm": {
                "number": "+33185000003",
                "working_hours": {
                    "schedule": "never",
                    "after_hours": {"action": "voicemail", "employee": "anna"},
                },
            },
            "greet": {
                "number": "+33185000004",
                "routing": {"greeting": "sound:numcfg/en/welcome"},
            },
        },
    }


async def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def bridges_with(harness: Harness, legs: list[CallerLeg]) -> int:
    """How many of `legs` are in a two-party bridge right now (asked of Asterisk)."""
    inside = set()
    for bridge in await harness.client.list_bridges():
        if len(bridge.get("channels", [])) == 2:
            inside.update(bridge["channels"])
    return sum(1 for leg in legs if leg.far_id in inside)


async def test_twenty_cuts_keep_conversations_and_lose_no_call(harness: Harness, numcfg) -> None:
    app = await numcfg(cut_config())
    for name in TEAM:
        await asyncio.to_thread(app.store.people.set_workday, name, "working")
    for ext in TEAM.values():
        harness.employees[ext] = Employee("answer", answer_after=0.2)  # never hangs up

    talkers = []
    for _ in range(CONVERSATIONS):
        talkers.append(await harness.call("+33185000000"))
    await wait_until_async(lambda: bridges_with(harness, talkers), CONVERSATIONS, 40)

    others = {
        "greet": [await harness.call("+33185000004") for _ in range(2)],
        "ivr": [await harness.call("+33185000001") for _ in range(3)],
        "wait": [await harness.call("+33185000002") for _ in range(3)],
        "vm": [await harness.call("+33185000003") for _ in range(2)],
    }
    for leg in others["ivr"]:
        await harness.heard(leg, "sound:numcfg/en/ivr-main")
    for leg in others["vm"]:
        await harness.heard(leg, "sound:numcfg/en/voicemail-intro", timeout=20)

    # Callers who hang up during a gap: their hangup never reaches numcfg as an event.
    leaving = others["ivr"] + others["wait"] + others["vm"]
    random.Random(9).shuffle(leaving)
    rng = random.Random(17)
    for cut in range(CUTS):
        connections = app.stream.connections
        assert await asyncio.to_thread(kill_ari_websockets, "numcfg") == 1
        if leaving and cut % 2 == 0:
            await harness.hangup(leaving.pop())
        await wait_until(
            lambda c=connections: app.stream.connections > c and app.stream.connected,
            20,
            f"reconnect after cut {cut + 1}",
        )
        await asyncio.sleep(rng.uniform(0.1, 0.6))
    for leg in leaving:  # any left: hang up while connected
        await harness.hangup(leg)

    # Every conversation survived the cuts and is still bridged.
    assert await bridges_with(harness, talkers) == CONVERSATIONS
    # Half end from the caller's side, half from the employee's.
    for index, leg in enumerate(talkers):
        if index % 2 == 0:
            await harness.hangup(leg)
        else:
            employee_leg = await employee_channel_of(harness, leg)
            await harness.client.hangup(employee_leg)
    for legs in others.values():
        for leg in legs:
            await harness.hangup(leg)

    calls = await calls_done(app, timeout=40)
    assert len(calls) == CONVERSATIONS + sum(len(v) for v in others.values())
    assert all(c["disposition"] and c["ended_at"] for c in calls)
    answered = [c for c in calls if c["number"] == "paris"]
    assert [c["disposition"] for c in answered] == ["answered"] * CONVERSATIONS
    assert all(c["recording"] and c["recording"]["seconds"] > 0 for c in answered)
    assert {c["disposition"] for c in calls if c["number"] == "vm"} == {"after_hours"}
    assert {c["disposition"] for c in calls if c["number"] in ("ivr", "wait")} == {"abandoned"}
    # Nothing is left: coroutines, gauge, claims, stored recordings in Asterisk's spool.
    assert app.services.active == {}
    assert app.metrics.active._value.get() == 0
    assert await app.services.claims.busy() == set()
    stored = {r["name"] for r in await harness.client.request("GET", "/recordings/stored")}
    ours = {f"numcfg-{kind}-{c['id']}" for c in calls for kind in ("rec", "vm")}
    assert stored & ours == set()
    # Every employee can be rung again.
    harness.employees[TEAM["e1"]] = Employee("answer", answer_after=0.2, hangup_after=0.5)
    for name in TEAM:
        if name != "e1":
            await asyncio.to_thread(app.store.people.set_workday, name, "ended")
    again = await harness.call("+33185000000")
    await harness.ended(again, timeout=30)
    latest = (await calls_done(app))[0]
    assert latest["employee"] == "e1" and latest["disposition"] == "answered"


async def wait_until_async(count, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (got := await count()) < expected:
        assert time.monotonic() < deadline, f"only {got} of {expected} conversations bridged"
        await asyncio.sleep(0.2)


async def employee_channel_of(harness: Harness, leg: CallerLeg) -> str:
    for bridge in await harness.client.list_bridges():
        members = bridge.get("channels", [])
        if leg.far_id in members:
            return next(c for c in members if c != leg.far_id)
    raise AssertionError(f"{leg.far_id} is in no bridge")
