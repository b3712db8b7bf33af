"""300 callers hang up at a random moment of every call state (issue 17).

Ten calls at a time, each sent into one state (seeded, so a failure replays): ringing into
Stasis, greeting, IVR prompt and digits, queue wait with hold music, an employee ringing,
a recorded conversation, voicemail, the rating prompt. Each caller hangs up at a random
moment inside that state. Afterwards every call placed has its details (calls placed =
records saved), and nothing is left: channels, bridges, stored recordings, claims,
coroutines, the active-calls gauge; every employee is rung again."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from tests.integration.harness import CallerLeg, Employee, Harness

from .checks import assert_after_faults
from .figures import FIGURES

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

CALLS = 300
AT_ONCE = 10
SEED = 1717
POOL = 6
RINGING = {f"r{i}": f"41{i}" for i in range(1, POOL + 1)}  # never answer: they ring
TALKING = {f"t{i}": f"42{i}" for i in range(1, POOL + 1)}  # answer, never hang up
RATING = {f"q{i}": f"43{i}" for i in range(1, POOL + 1)}  # answer, hang up: rating prompt

NUMBERS = {
    "stasis": "+33185000010",
    "greet": "+33185000011",
    "ivr": "+33185000012",
    "wait": "+33185000013",
    "ring": "+33185000014",
    "talk": "+33185000015",
    "vm": "+33185000016",
    "rate": "+33185000017",
}
STATES = list(NUMBERS)
WELCOME = "sound:numcfg/en/welcome"
MENU = "sound:numcfg/en/ivr-main"


def employees(pool: dict[str, str]) -> dict[str, dict[str, str]]:
    return {
        name: {"name": name, "extension": ext, "endpoint": f"Local/{ext}@numcfg-test-employees"}
        for name, ext in pool.items()
    }


def queue(members: list[str], **extra: object) -> dict[str, object]:
    return {
        "members": members,
        "distribution": "evenly",
        "ring_time": 8,
        "max_wait": 60,
        "fallback": {"action": "hangup"},
        **extra,
    }


def hangup_config() -> dict:
    recorded = {"record_all": True, "warning": False}
    return {
        "employees": {**employees(RINGING), **employees(TALKING), **employees(RATING)},
        "queues": {
            "ringing": queue(list(RINGING)),
            "talking": queue(list(TALKING)),
            "rating": queue(list(RATING)),
            "idle": queue(["chloe"], max_wait=300),  # chloe is not working: hold music
        },
        "ivr_menus": {
            "menu": {
                "prompt": MENU,
                "first_digit_timeout": 5,
                "inter_digit_timeout": 3,
                "retries": 3,
                "options": {
                    "1": {"action": "queue", "queue": "idle"},
                    "41": {"action": "voicemail", "employee": "anna"},
                },
                "on_failure": {"action": "hangup"},
            }
        },
        "schedules": {"never": {"timezone": "Europe/Paris", "week": {}}},
        "numbers": {
            "stasis": {"number": NUMBERS["stasis"], "routing": {"greeting": WELCOME}},
            "greet": {"number": NUMBERS["greet"], "routing": {"greeting": WELCOME}},
            "ivr": {"number": NUMBERS["ivr"], "routing": {"ivr": "menu"}},
            "wait": {"number": NUMBERS["wait"], "routing": {"queue": "idle"}},
            "ring": {"number": NUMBERS["ring"], "routing": {"queue": "ringing"}},
            "talk": {
                "number": NUMBERS["talk"],
                "routing": {"queue": "talking"},
                "recording": recorded,
            },
            "vm": {
                "number": NUMBERS["vm"],
                "working_hours": {
                    "schedule": "never",
                    "after_hours": {"action": "voicemail", "employee": "anna"},
                },
            },
            "rate": {
                "number": NUMBERS["rate"],
                "routing": {"queue": "rating"},
                "recording": recorded,
                "rating": True,
            },
        },
    }


async def entered_stasis(harness: Harness, leg: CallerLeg) -> None:
    """numcfg's half of the call reached Stasis(numcfg, ...) in the dialplan."""
    await harness.wait_for(
        lambda e: (
            e.get("type") in ("ChannelDialplan", "StasisStart")
            and e["channel"]["id"] == leg.far_id
            and (e.get("type") == "StasisStart" or e.get("dialplan_app") == "Stasis")
        ),
        what="the call to enter Stasis",
    )


async def answered(harness: Harness, leg: CallerLeg) -> None:
    await harness.wait_for(
        lambda e: e.get("type") == "StasisStart" and e["channel"]["id"] == leg.caller_id,
        what="numcfg to answer",
    )


async def into_state(harness: Harness, leg: CallerLeg, state: str, rng: random.Random) -> None:
    """Wait until the call is in `state`, then a random moment inside it."""
    match state:
        case "stasis":
            await entered_stasis(harness, leg)
            await asyncio.sleep(rng.uniform(0, 0.15))
        case "greet":
            await harness.heard(leg, WELCOME)
            await asyncio.sleep(rng.uniform(0, 2.0))
        case "ivr":
            await harness.heard(leg, MENU)
            await asyncio.sleep(rng.uniform(0, 1.0))
            digits = rng.choice(["", "4", "7", "47"])  # nothing, half an option, wrong
            if digits:
                await harness.press(leg, digits)
            await asyncio.sleep(rng.uniform(0, 1.5))
        case "wait":
            await answered(harness, leg)
            await asyncio.sleep(rng.uniform(0.2, 2.5))
        case "ring":
            await answered(harness, leg)
            await asyncio.sleep(rng.uniform(0.3, 2.5))
        case "talk":
            await harness.bridged(leg, timeout=30)
            await asyncio.sleep(rng.uniform(0, 2.5))
        case "vm":
            await harness.heard(leg, "sound:numcfg/en/voicemail-intro")
            await asyncio.sleep(rng.uniform(0, 4.0))
        case "rate":
            await harness.heard(leg, "sound:numcfg/en/rating", timeout=30)
            await asyncio.sleep(rng.uniform(0, 1.5))


async def test_three_hundred_random_hangups_in_every_state_lose_no_call_and_leave_nothing(
    harness: Harness, numcfg, request: pytest.FixtureRequest
) -> None:
    app = await numcfg(hangup_config())
    for name in (*RINGING, *TALKING, *RATING):
        await asyncio.to_thread(app.store.people.set_workday, name, "working")
    for ext in RINGING.values():
        harness.employees[ext] = Employee("ignore")
    for ext in TALKING.values():
        harness.employees[ext] = Employee("answer", answer_after=0.2)
    for ext in RATING.values():
        harness.employees[ext] = Employee("answer", answer_after=0.2, hangup_after=0.8)

    rng = random.Random(SEED)
    states = [STATES[i % len(STATES)] for i in range(CALLS)]
    rng.shuffle(states)
    seeds = [rng.randrange(2**32) for _ in range(CALLS)]
    slots = asyncio.Semaphore(AT_ONCE)
    missed: list[str] = []
    placed = 0

    async def one(index: int) -> None:
        nonlocal placed
        state = states[index]
        async with slots:
            leg = await harness.call(NUMBERS[state], caller=f"+336{index:08d}")
            placed += 1
            try:
                await into_state(harness, leg, state, random.Random(seeds[index]))
            except AssertionError as exc:
                missed.append(f"call {index} ({state}): {exc}")
            await harness.hangup(leg)
            FIGURES.fault(request.node.name)
            await harness.ended(leg, timeout=30)

    await asyncio.gather(*(one(i) for i in range(CALLS)))
    assert placed == CALLS
    calls = await assert_after_faults(app, harness, test=request.node.name, placed=CALLS)
    assert missed == [], missed
    by_number = Counter(c["number"] for c in calls)
    assert by_number == Counter(states)
    # The states were reached: conversations answered, voicemail after hours.
    assert {c["disposition"] for c in calls if c["number"] == "talk"} == {"answered"}
    assert {c["disposition"] for c in calls if c["number"] == "vm"} == {"after_hours"}
    rated = [c for c in calls if c["number"] == "rate"]
    assert {c["disposition"] for c in rated} == {"answered"}
    assert all(c["rating"] is None for c in rated)  # nobody pressed a digit
