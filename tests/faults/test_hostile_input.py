"""Hostile caller input on the rig (issue 17): caller IDs, dialed strings, DTMF floods.

Every call is refused or routed normally, nothing a caller or a phone sends reaches a dial
string (the trunk only ever dials the numbers numcfg validated, and no channel Asterisk
creates meanwhile has a name built from hostile text), and every call has its details."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import uuid

import pytest

from asterisk_bridge.ari.errors import AriError
from tests.integration.conftest import rig
from tests.integration.harness import CallerLeg, Employee, Harness

from .checks import assert_after_faults
from .figures import FIGURES

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

FORWARD_TO = "+33611111111"
OUTBOUND_OK = "+33612345678"  # what the harmless control dial "0612345678" becomes

HOSTILE_CALLER_IDS = [
    "9" * 300,
    "A" * 2000,
    "+3361&PJSIP/evil",
    '"Evil, Inc" <+33612345678>',
    "+336;x=1|y",
    "+33,6,1",
    "'; DROP TABLE calls; --",
    '"\\"quoted\\"" <\'+336\'>',
    "Zoë Ünïcødé <+33698765432>",
    "+33６１２３４",  # fullwidth digits
    "\u202e+33612",  # right-to-left override
    "${EVAL(${SHELL(id)})}",
    "",
]

# Sent straight into Stasis(numcfg,outbound,<dialed>), as a dialplan without FILTER would.
HOSTILE_DIALED = [
    "500&PJSIP/x",
    "0612345678&Local/666@numcfg-test-trunk",
    "${EVAL(${SHELL(touch /tmp/numcfg-pwned)})}",
    "0612345678^x",
    "06123/x@y",
    "9" * 200,
    "+" + "3" * 200,
    "*123*" + "0" * 200,
]
# Dialed on an employee phone through the generated numcfg-outbound context (FILTER).
HOSTILE_PHONE_DIALED = ["0612345678&x", "0612345678#*#", "0" * 200]

# What a channel numcfg makes Asterisk create may be called: Local channels of the test
# trunk or employees' phones, with an extension of keypad symbols only. The test's own
# calls (into numcfg-inbound and numcfg-phones) carry the hostile text themselves.
SAFE_CHANNEL = re.compile(r"^Local/[0-9a-z+*#]+@numcfg-test-(trunk|employees)-[0-9a-f]+;[12]$")
PLACED_BY_TEST = re.compile(r"^Local/.*@numcfg-(inbound|phones)-[0-9a-f]+;[12]$", re.DOTALL)


def hostile_config() -> dict:
    return {
        "queues": {
            "sales": {"members": ["anna"], "ring_time": 5, "max_wait": 20},
            "nobody": {
                "members": ["boris"],
                "ring_time": 1,
                "max_wait": 2,
                "fallback": {"action": "forward", "to": FORWARD_TO},
            },
        },
        "ivr_menus": {
            "menu": {
                "prompt": "sound:numcfg/en/ivr-main",
                "first_digit_timeout": 2,
                "inter_digit_timeout": 1,
                "retries": 2,
                "options": {
                    "1": {"action": "employee", "employee": "anna"},
                    "22": {"action": "queue", "queue": "nobody"},
                    "0": {"action": "hangup"},
                },
                "on_failure": {"action": "hangup"},
            }
        },
        "numbers": {
            "answered": {"number": "+33185000020", "routing": {"greeting": None, "queue": "sales"}},
            "missed": {
                "number": "+33185000021",
                "routing": {"greeting": None, "queue": "nobody"},
                "callback": {"attempts": 1, "delay": 600},
            },
            "ivr": {"number": "+33185000022", "routing": {"greeting": None, "ivr": "menu"}},
            "out": {
                "number": "+33185000023",
                "outbound": {"selectable": True, "allowed_employees": "all"},
            },
        },
    }


class ChannelWatch:
    """Every channel name Asterisk shows (`core show channels concise`) while it runs."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ChannelWatch:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._once()

    async def _poll(self) -> None:
        while True:
            await self._once()
            await asyncio.sleep(0.25)

    async def _once(self) -> None:
        out = await asyncio.to_thread(rig, "cli", "core show channels concise")
        for line in out.splitlines():
            if "!" in line:
                self.names.add(line.split("!", 1)[0])

    def unsafe(self) -> list[str]:
        return sorted(
            n for n in self.names if not (SAFE_CHANNEL.match(n) or PLACED_BY_TEST.match(n))
        )


async def working(app, *names: str) -> None:
    for name in names:
        await asyncio.to_thread(app.store.people.set_workday, name, "working")


def assert_trunk_only_dialed(harness: Harness, allowed: set[str]) -> None:
    assert set(harness.trunk_reached) <= allowed, harness.trunk_reached
    assert all(re.fullmatch(r"\+[0-9]{6,15}", n) for n in harness.trunk_reached)


async def test_hostile_caller_ids_are_routed_normally_and_never_dialed(
    harness: Harness, numcfg, request: pytest.FixtureRequest
) -> None:
    app = await numcfg(hostile_config())
    await working(app, "anna", "boris")
    harness.employees["101"] = Employee("answer", answer_after=0.2, hangup_after=0.3)
    harness.employees["102"] = Employee("ignore")
    harness.trunk_hangup_after = 0.3
    legs: list[CallerLeg] = []
    async with ChannelWatch() as watch:
        for caller in HOSTILE_CALLER_IDS:
            for number in ("+33185000020", "+33185000021"):
                legs.append(await harness.call(number, caller=caller))
                FIGURES.fault(request.node.name)
            await asyncio.gather(*(harness.ended(leg, timeout=30) for leg in legs[-2:]))
    calls = await assert_after_faults(app, harness, test=request.node.name, placed=len(legs))
    assert watch.unsafe() == []
    # Routed normally: anna answered every call of "answered"; "missed" was forwarded.
    assert {c["disposition"] for c in calls if c["number"] == "answered"} == {"answered"}
    assert all(c["route"][-1] == f"forward:{FORWARD_TO}" for c in calls if c["number"] == "missed")
    assert_trunk_only_dialed(harness, {FORWARD_TO})
    # No callback job for a caller ID that is not an allowed E.164 number.
    jobs = await asyncio.to_thread(app.store.callbacks.jobs)
    assert all(re.fullmatch(r"\+[0-9]{6,15}", job.phone) for job in jobs), jobs


async def outbound_direct(harness: Harness, dialed: str, phone_ext: str = "101") -> CallerLeg:
    """An employee phone (caller ID `phone_ext`) handed to Stasis(numcfg,outbound,<dialed>)
    with nothing filtered; its far half is answered by the harness as a desk phone."""
    leg = CallerLeg(
        caller_id=f"phone-{uuid.uuid4().hex[:12]}", far_id=f"desk-{uuid.uuid4().hex[:12]}"
    )
    await harness.client.originate(
        endpoint="Local/desk@numcfg-test-employees",
        channel_id=leg.caller_id,
        other_channel_id=leg.far_id,
        app="numcfg",
        app_args=f"outbound,{dialed}",
        caller_id=phone_ext,
        formats="ulaw",
    )
    return leg


async def test_hostile_dialed_strings_are_refused_and_never_reach_a_dial_string(
    harness: Harness, numcfg, request: pytest.FixtureRequest
) -> None:
    app = await numcfg(hostile_config())
    harness.employees["desk"] = Employee("answer", answer_after=0.1)
    harness.trunk_hangup_after = 0.3
    ends: list[tuple[str, str]] = []  # (channel numcfg handles, how the call was placed)
    async with ChannelWatch() as watch:
        for dialed in [*HOSTILE_DIALED, "0612345678"]:
            leg = await outbound_direct(harness, dialed)
            FIGURES.fault(request.node.name)
            await harness.wait_for(
                lambda e, leg=leg: (
                    e.get("type") == "ChannelDestroyed" and e["channel"]["id"] == leg.caller_id
                ),
                timeout=30,
                what=f"outbound {dialed[:30]!r} to end",
            )
            ends.append((leg.caller_id, dialed))
        for dialed in [*HOSTILE_PHONE_DIALED, "0612345678"]:
            leg = await harness.call(dialed, context="numcfg-phones", caller="101")
            FIGURES.fault(request.node.name)
            await harness.ended(leg, timeout=30)
            ends.append((leg.far_id, dialed))
    calls = await assert_after_faults(app, harness, test=request.node.name, placed=len(ends))
    assert watch.unsafe() == []
    # Only the two controls and the phone's "0612345678&x" (FILTERed to 0612345678 by the
    # dialplan) went out, as the E.164 number numcfg made of them; every string sent
    # unfiltered into Stasis was refused.
    assert_trunk_only_dialed(harness, {OUTBOUND_OK})
    assert harness.trunk_reached.count(OUTBOUND_OK) == 3
    outgoing = [c for c in calls if c["direction"] == "outgoing"]
    assert len(outgoing) == len(ends)
    assert [c["disposition"] for c in outgoing].count("answered") == 3
    assert all(c["disposition"] in ("answered", "failed") for c in outgoing)
    for call in outgoing:  # what numcfg stored as the callee is never the hostile string
        callee = call["callee"]
        # "desk": the extension Asterisk gives the directly originated phone's channel.
        assert callee in (None, "desk") or re.fullmatch(r"[0-9+*#]*", callee), call


async def test_dtmf_floods_during_the_ivr_end_in_a_normal_route(
    harness: Harness, numcfg, request: pytest.FixtureRequest
) -> None:
    app = await numcfg(hostile_config())
    await working(app, "anna", "boris")
    harness.employees["101"] = Employee("answer", answer_after=0.2, hangup_after=2.0)
    harness.employees["102"] = Employee("ignore")
    harness.trunk_hangup_after = 1.0
    rng = random.Random(4242)
    floods = ["".join(rng.choice("0123456789*#") for _ in range(100)) for _ in range(6)]

    async def flood(digits: str) -> None:
        leg = await harness.call("+33185000022")
        await harness.heard(leg, "sound:numcfg/en/ivr-main")
        await harness.wait_for(
            lambda e: e.get("type") == "StasisStart" and e["channel"]["id"] == leg.caller_id,
            what="the caller's phone to be answered",
        )
        with contextlib.suppress(AriError):  # the call may end mid-flood
            await harness.client.request(
                "POST",
                f"/channels/{leg.caller_id}/dtmf",
                params={"dtmf": digits, "between": 30, "duration": 60},
            )
        FIGURES.fault(request.node.name)
        with contextlib.suppress(AssertionError):  # 100 digits take about 9 s
            await harness.ended(leg, timeout=12)
        await harness.hangup(leg)
        await harness.ended(leg, timeout=15)

    async with ChannelWatch() as watch:
        await asyncio.gather(*(flood(digits) for digits in floods))
    calls = await assert_after_faults(app, harness, test=request.node.name, placed=len(floods))
    assert watch.unsafe() == []
    assert_trunk_only_dialed(harness, {FORWARD_TO})
    for call in calls:
        assert call["route"], call
        last = call["route"][-1]
        assert last in ("hangup", "employee:anna", f"forward:{FORWARD_TO}", "queue:nobody") or (
            last.startswith("ivr:menu:")
        ), call
