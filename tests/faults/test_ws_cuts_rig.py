"""Cuts of numcfg's ARI websocket on the real rig (issues 9 and 17).

Asterisk's side of the websocket is shut down (`ari shutdown websocket session`), as a
network drop or an Asterisk-side failure would. Asterisk keeps the channels in Stasis and
drops the events of the gap; numcfg reconnects and takes its calls back.

- A cut in every call state (greeting, recording warning, IVR, queue wait, an employee
  ringing, conversation, voicemail, rating prompt): once with the call going on after the
  reconnection (it reaches its next step), once with the caller hanging up inside the gap
  (the hangup event is lost to numcfg).
- Twenty cuts while ten recorded conversations are up and ten callers sit in a greeting,
  an IVR, a queue and voicemail, some of them hanging up inside a gap.
- A call whose StasisStart was lost is hung up by the reconciliation after a cut.

Each ends with issue 17's checks (checks.assert_after_faults): every call with its
details, 0 channels, 0 bridges, 0 recordings left in Asterisk's spool, no claim, and every
employee rung again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from asterisk_bridge.ari.events import Event, StasisStart
from asterisk_bridge.store import open_store
from tests.integration.conftest import (
    install_dialplan,
    kill_ari_websockets,
    rig,
    start_service,
    write_config,
)
from tests.integration.harness import CallerLeg, Employee, Harness

from .checks import assert_after_faults, assert_after_service, with_check
from .figures import FIGURES

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

WELCOME = "sound:numcfg/en/welcome"
WARNING = "sound:numcfg/en/recording-warning"
MENU = "sound:numcfg/en/ivr-main"
VM_INTRO = "sound:numcfg/en/voicemail-intro"
RATING = "sound:numcfg/en/rating"


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def cut(app, test: str) -> int:
    """Cut numcfg's websocket once; the connection count before the cut."""
    connections = app.stream.connections
    assert await asyncio.to_thread(kill_ari_websockets, "numcfg") == 1
    FIGURES.fault(test)
    return connections


async def reconnected(app, connections: int, what: str = "the reconnection") -> None:
    await wait_until(
        lambda: app.stream.connections > connections and app.stream.connected, 20, what
    )


def private(path: Path) -> list[str]:
    """Files and folders under `path` readable by anyone but numcfg's user."""
    return [
        f"{p} {oct(p.stat().st_mode & 0o777)}"
        for p in [path, *path.rglob("*")]
        if p.stat().st_mode & 0o077
    ]


# -- a cut in every call state ------------------------------------------------------------

STATE_TEAM = {"r1": "451", "t1": "452", "w1": "453", "q1": "454"}
STATE_NUMBERS = {
    "greeting": "+33185000021",
    "warning": "+33185000022",
    "ivr": "+33185000023",
    "queue_wait": "+33185000024",
    "ringing": "+33185000025",
    "conversation": "+33185000026",
    "voicemail": "+33185000027",
    "rating": "+33185000028",
}


def state_config() -> dict:
    recorded = {"record_all": True, "warning": False}

    def queue(members: list[str], **extra: object) -> dict[str, object]:
        return {
            "members": members,
            "ring_time": 15,
            "max_wait": 120,
            "fallback": {"action": "hangup"},
            **extra,
        }

    def number(state: str, routing: dict | None = None, **extra: object) -> dict[str, object]:
        entry: dict[str, object] = {"number": STATE_NUMBERS[state], **extra}
        if routing is not None:
            entry["routing"] = routing
        return entry

    return {
        "employees": {
            name: {"name": name, "extension": ext, "endpoint": f"Local/{ext}@numcfg-test-employees"}
            for name, ext in STATE_TEAM.items()
        },
        "queues": {
            "ringq": queue(["r1"]),
            "talkq": queue(["t1"]),
            "warnq": queue(["w1"]),
            "rateq": queue(["q1"]),
            "idle": queue(["chloe"], max_wait=300),  # chloe is not working: hold music
        },
        "ivr_menus": {
            "menu": {
                "prompt": MENU,
                "first_digit_timeout": 20,
                "retries": 1,
                "options": {"1": {"action": "queue", "queue": "idle"}},
                "on_failure": {"action": "hangup"},
            }
        },
        "schedules": {"never": {"timezone": "Europe/Paris", "week": {}}},
        "numbers": {
            "greeting": number("greeting", {"greeting": WELCOME}),
            "warning": number(
                "warning",
                {"queue": "warnq"},
                recording={"record_all": True, "warning": True},
            ),
            "ivr": number("ivr", {"ivr": "menu"}),
            "queue_wait": number("queue_wait", {"queue": "idle"}),
            "ringing": number("ringing", {"queue": "ringq"}),
            "conversation": number("conversation", {"queue": "talkq"}, recording=recorded),
            "voicemail": number(
                "voicemail",
                working_hours={
                    "schedule": "never",
                    "after_hours": {"action": "voicemail", "employee": "anna"},
                },
            ),
            "rating": number("rating", {"queue": "rateq"}, recording=recorded, rating=True),
        },
    }


def state_employees() -> dict[str, Employee]:
    return {
        # Answers 4 s after it starts ringing: the cut comes while it rings.
        STATE_TEAM["r1"]: Employee("answer", answer_after=4.0, hangup_after=1.0),
        STATE_TEAM["t1"]: Employee("answer", answer_after=0.2),  # talks until the caller leaves
        STATE_TEAM["w1"]: Employee("answer", answer_after=0.2, hangup_after=1.0),
        # Hangs up first: the caller hears the rating prompt.
        STATE_TEAM["q1"]: Employee("answer", answer_after=0.2, hangup_after=0.8),
    }


async def into(harness: Harness, leg: CallerLeg, state: str) -> None:
    """Wait until the call `leg` is in `state`."""
    match state:
        case "greeting":
            await harness.heard(leg, WELCOME)
        case "warning":
            await harness.heard(leg, WARNING)
        case "ivr":
            await harness.heard(leg, MENU)
        case "queue_wait":
            await harness.wait_for(
                lambda e: e.get("type") == "StasisStart" and e["channel"]["id"] == leg.caller_id,
                what="numcfg to answer",
            )
            await asyncio.sleep(0.5)  # in the queue, hearing hold music
        case "ringing":
            await harness.employee_rung(STATE_TEAM["r1"])
        case "conversation":
            await harness.bridged(leg, timeout=20)
            await asyncio.sleep(0.5)  # talking, and recording
        case "voicemail":
            await harness.heard(leg, VM_INTRO)
        case "rating":
            await harness.heard(leg, RATING, timeout=20)


async def go_on(harness: Harness, leg: CallerLeg, state: str) -> None:
    """After the reconnection, the call reaches its next step; then it ends."""
    match state:
        case "greeting":
            pass  # the greeting ends and numcfg hangs up (route: greeting, hangup)
        case "warning" | "ringing":
            await harness.bridged(leg, timeout=20)  # the employee hangs up after 1 s
        case "ivr":
            await harness.press(leg, "1")
            await asyncio.sleep(1.5)  # into the queue
            await harness.hangup(leg)
        case "queue_wait":
            await asyncio.sleep(1.0)
            assert any(c["id"] == leg.far_id for c in await harness.client.list_channels())
            await harness.hangup(leg)
        case "conversation":
            bridge = await harness.bridge_of(leg.far_id)
            assert bridge is not None and len(bridge["channels"]) == 2, "conversation lost"
            await asyncio.sleep(0.5)
            await harness.hangup(leg)
        case "voicemail":
            await harness.wait_for(  # after the intro and the beep
                lambda e: (
                    e.get("type") == "RecordingStarted"
                    and e["recording"]["target_uri"] == f"channel:{leg.far_id}"
                ),
                timeout=20,
                what="the voicemail recording to start",
            )
            await harness.speak(leg)
            await asyncio.sleep(2.0)
            await harness.hangup(leg)
        case "rating":
            await harness.press(leg, "4")
    await harness.ended(leg, timeout=30)


def check_went_on(call: dict, state: str, tmp_path: Path) -> None:
    match state:
        case "greeting":
            assert call["route"] == ["greeting", "hangup"], call
        case "warning":
            assert (call["disposition"], call["employee"]) == ("answered", "w1"), call
            assert call["recording"] and call["recording"]["seconds"] > 0, call
        case "ivr":
            assert call["route"][0] == "ivr:menu:1", call
        case "queue_wait":
            assert call["disposition"] == "abandoned", call
        case "ringing":
            assert (call["disposition"], call["employee"]) == ("answered", "r1"), call
        case "conversation":
            assert (call["disposition"], call["employee"]) == ("answered", "t1"), call
            assert call["recording"] and call["recording"]["seconds"] > 0, call
        case "voicemail":
            assert "voicemail:anna" in call["route"], call
            message = tmp_path / "voicemail" / f"{call['id']}.wav"
            assert message.exists() and message.stat().st_size > 8000, call  # what was said
        case "rating":
            assert call["rating"] == 4, call


@pytest.mark.parametrize("caller", ["goes_on", "hangs_up_in_the_gap"])
async def test_a_cut_in_every_call_state_loses_no_call(
    harness: Harness, numcfg, tmp_path: Path, caller: str, request: pytest.FixtureRequest
) -> None:
    test = request.node.name
    app = await numcfg(state_config())
    for name in STATE_TEAM:
        await asyncio.to_thread(app.store.people.set_workday, name, "working")
    in_gap = 0
    for state, exten in STATE_NUMBERS.items():
        harness.employees.update(state_employees())
        leg = await harness.call(exten)
        await into(harness, leg, state)
        connections = await cut(app, test)
        if caller == "goes_on":
            await reconnected(app, connections, f"the reconnection ({state})")
            await go_on(harness, leg, state)
        else:
            in_gap += not app.stream.connected
            await harness.hangup(leg)  # numcfg never gets this hangup's events
            await reconnected(app, connections, f"the reconnection ({state})")
            await harness.ended(leg, timeout=20)
        await wait_until(lambda: not app.services.active, 30, f"the {state} call to finish")
        await app.journal.flush(timeout=10)
        (latest, *_) = [c.to_json() for c in await asyncio.to_thread(app.store.calls.recent)]
        assert latest["number"] == state and latest["disposition"], latest
        if caller == "goes_on":
            check_went_on(latest, state, tmp_path)
    if caller != "goes_on":
        assert in_gap >= len(STATE_NUMBERS) // 2, f"only {in_gap} hangups inside a gap"
    calls = await assert_after_faults(app, harness, test=test, placed=len(STATE_NUMBERS))
    assert sorted(c["number"] for c in calls) == sorted(STATE_NUMBERS)
    # Everything numcfg kept of these calls is private (issue 17's fourth finding).
    for folder in ("recordings", "voicemail"):
        if (tmp_path / folder).exists():
            assert private(tmp_path / folder) == []
    if caller == "goes_on":
        assert list((tmp_path / "recordings").rglob("*.wav")), "no recording kept"
        assert list((tmp_path / "voicemail").rglob("*.wav")), "no voicemail kept"


# -- twenty cuts while conversations are up ------------------------------------------------

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
                "prompt": MENU,
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
            "greet": {"number": "+33185000004", "routing": {"greeting": WELCOME}},
        },
    }


async def bridges_with(harness: Harness, legs: list[CallerLeg]) -> int:
    """How many of `legs` are in a two-party bridge right now (asked of Asterisk)."""
    inside = set()
    for bridge in await harness.client.list_bridges():
        if len(bridge.get("channels", [])) == 2:
            inside.update(bridge["channels"])
    return sum(1 for leg in legs if leg.far_id in inside)


async def wait_until_async(
    count: Callable[[], Awaitable[int]], expected: int, timeout: float
) -> None:
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


async def test_twenty_cuts_keep_conversations_and_lose_no_call(
    harness: Harness, numcfg, request: pytest.FixtureRequest
) -> None:
    test = request.node.name
    app = await numcfg(cut_config())
    for name in TEAM:
        await asyncio.to_thread(app.store.people.set_workday, name, "working")
    for ext in TEAM.values():
        harness.employees[ext] = Employee("answer", answer_after=0.2)  # never hangs up

    talkers = [await harness.call("+33185000000") for _ in range(CONVERSATIONS)]
    await wait_until_async(lambda: bridges_with(harness, talkers), CONVERSATIONS, 40)

    others = {
        "greet": [await harness.call("+33185000004") for _ in range(2)],
        "ivr": [await harness.call("+33185000001") for _ in range(3)],
        "wait": [await harness.call("+33185000002") for _ in range(3)],
        "vm": [await harness.call("+33185000003") for _ in range(2)],
    }
    for leg in others["ivr"]:
        await harness.heard(leg, MENU)
    for leg in others["vm"]:
        await harness.heard(leg, VM_INTRO, timeout=20)

    # Callers who hang up during a gap: their hangup never reaches numcfg as an event.
    leaving = others["ivr"] + others["wait"] + others["vm"]
    random.Random(9).shuffle(leaving)
    rng = random.Random(17)
    for number in range(CUTS):
        connections = await cut(app, test)
        if leaving and number % 2 == 0:
            await harness.hangup(leaving.pop())
        await reconnected(app, connections, f"the reconnection after cut {number + 1}")
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
            await harness.client.hangup(await employee_channel_of(harness, leg))
    for legs in others.values():
        for leg in legs:
            await harness.hangup(leg)

    placed = CONVERSATIONS + sum(len(v) for v in others.values())
    calls = await assert_after_faults(app, harness, test=test, placed=placed, timeout=40)
    answered = [c for c in calls if c["number"] == "paris"]
    assert [c["disposition"] for c in answered] == ["answered"] * CONVERSATIONS
    assert all(c["recording"] and c["recording"]["seconds"] > 0 for c in answered)
    assert {c["disposition"] for c in calls if c["number"] == "vm"} == {"after_hours"}
    assert {c["disposition"] for c in calls if c["number"] in ("ivr", "wait")} == {"abandoned"}


# -- a call whose StasisStart was lost -----------------------------------------------------


async def test_a_cut_hangs_up_a_call_left_without_owner(
    harness: Harness, numcfg, request: pytest.FixtureRequest
) -> None:
    """A call that sat in Stasis with no owner (its StasisStart was lost) is not left
    silent forever: the reconciliation after the next cut hangs it up."""
    test = request.node.name
    app = await numcfg()
    real_handler = app.dispatcher.on_unrouted
    lost: list[str] = []

    def lose(event: Event) -> None:  # the StasisStart is "lost"
        if isinstance(event, StasisStart):
            lost.append(event.channel.id)

    app.dispatcher.on_unrouted = lose
    leg = await harness.call("+33185000000")
    await wait_until(lambda: leg.far_id in lost, 10, "the call's StasisStart")
    assert leg.far_id in (await app.client.application())["channel_ids"]
    app.dispatcher.on_unrouted = real_handler
    connections = await cut(app, test)
    await reconnected(app, connections)
    await harness.ended(leg, timeout=20)
    assert harness.media_heard(leg) == []
    # numcfg never owned it, so it has no details; the next call after the cut does.
    FIGURES.unchecked(test, 1)
    leg = await harness.call("+33185000000")
    await harness.heard(leg, WELCOME)
    await harness.ended(leg)
    (call,) = await assert_after_faults(app, harness, test=test, placed=1)
    assert call["route"] == ["greeting", "hangup"]


# -- what numcfg logs under cuts ------------------------------------------------------------


async def numcfg_sessions() -> int:
    """numcfg's ARI websockets open in Asterisk now."""
    listing = await asyncio.to_thread(rig, "cli", "ari show websocket sessions")
    return sum(
        1
        for line in listing.splitlines()
        if len(fields := line.split()) >= 5
        and fields[1] == "inbound"
        and "numcfg" in fields[4].split(",")
    )


LOG_CUTS = 10
LOG_TEAM = {"anna": "101", "boris": "102", "chloe": "103"}


def log_config() -> dict:
    return {
        "queues": {
            "sales": {
                "members": list(LOG_TEAM),
                "ring_time": 10,
                "max_wait": 60,
                "fallback": {"action": "hangup"},
            }
        },
        "numbers": {"paris": {"routing": {"greeting": WELCOME, "queue": "sales"}}},
    }


async def test_logs_under_cuts_collapse_repeats_and_say_each_call_state_change_once(
    harness: Harness, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Issue 17's log finding (a run of cuts wrote 74,000 warning lines): `numcfg --log-json
    run` with three conversations up through ten cuts in a few seconds. Its warnings stay a
    handful (a repeat is one line, then one line with its count), and each call's state
    changes are one line each, with the call id as a field."""
    test = request.node.name
    harness.reset()
    config = write_config(tmp_path, with_check(log_config()))
    os.chmod(config, 0o600)
    install_dialplan(config)
    store = open_store(f"sqlite:///{tmp_path}/numcfg.sqlite3")
    for name in LOG_TEAM:
        store.people.set_workday(name, "working")
    for ext in LOG_TEAM.values():
        harness.employees[ext] = Employee("answer", answer_after=0.2)  # talks until the end
    log = tmp_path / "numcfg.log"
    proc = await start_service(config, stderr=log, options=("--log-json",))
    try:
        legs = [await harness.call("+33185000000", caller=f"+3361230000{i}") for i in range(3)]
        for leg in legs:
            await harness.bridged(leg, timeout=30)
        for _ in range(LOG_CUTS):
            await wait_until_async(numcfg_sessions, 1, 20)  # reconnected (after 0.5 s)
            assert await asyncio.to_thread(kill_ari_websockets, "numcfg") == 1
            FIGURES.fault(test)
        await wait_until_async(numcfg_sessions, 1, 20)
        for leg in legs:
            assert await harness.bridge_of(leg.far_id) is not None, "conversation lost"
            await harness.hangup(leg)
        saved = await assert_after_service(store, harness, LOG_TEAM, test=test, placed=3)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 20)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        store.close()
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    warnings = [e["message"] for e in entries if e["level"] in ("WARNING", "ERROR")]
    # Each distinct warning once (then once more with its count, past 30 s): ten cuts
    # make one "websocket closed" line, not ten.
    closed = [m for m in warnings if "websocket closed" in m]
    assert 1 <= len(closed) <= 2, closed
    assert len(warnings) <= 6, warnings
    for call in saved:
        lines = [e["message"] for e in entries if e.get("call_id") == call["id"]]
        said = [m.split(": ", 1)[1] for m in lines if m.startswith(f"call {call['id']}: ")]
        assert said[0].startswith("started, incoming from '+336"), said
        assert said[1:-1] == call["route"], said  # each step once, in order
        assert said[-1] == f"ended, {call['disposition']}", said
