"""The ring tone a caller hears while an employee's phone rings, on the real rig (issue 15):
started when the phone says it rings (as Dial() relays it), after a short grace when the
leg says nothing, and not at all for a phone that answers at once."""

from __future__ import annotations

from typing import Any

import pytest

from asterisk_bridge.calls.core import connect

from .harness import CallerLeg, Employee, Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

MAIN = "sound:numcfg/en/ivr-main"
RING = "tone:ring"
CONFIG = {
    "ivr_menus": {
        "main": {
            "prompt": MAIN,
            "first_digit_timeout": 5,
            "options": {"1": {"action": "employee", "employee": "anna"}},
        },
    },
    "numbers": {
        "paris": {"number": "+33185000000", "routing": {"greeting": None, "ivr": "main"}},
    },
}


def _ringback_started(leg: CallerLeg) -> Any:
    return lambda e: (
        e.get("type") == "PlaybackStarted"
        and e["playback"]["target_uri"] == f"channel:{leg.far_id}"
        and e["playback"]["media_uri"] == RING
    )


async def _call_anna(harness: Harness, numcfg: Any, employee: Employee) -> tuple[Any, CallerLeg]:
    app = await numcfg(CONFIG)
    harness.employees["101"] = employee
    leg = await harness.call("+33185000000")
    await harness.heard(leg, MAIN)
    await harness.press(leg, "1")
    return app, leg


async def _finish(harness: Harness, app: Any, leg: CallerLeg) -> dict[str, Any]:
    """The employee hangs up; the call is answered by anna and nothing is left behind."""
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["route"] == ["ivr:main:1", "employee:anna"]
    assert call["disposition"] == "answered"
    await harness.assert_clean()
    return call


async def test_a_phone_that_rings_gets_the_tone_at_once_and_it_stops_at_the_answer(
    harness: Harness, numcfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A grace far longer than the ringing: the tone can only come from the phone's ringing.
    monkeypatch.setattr(connect, "RINGBACK_GRACE_SECONDS", 30.0)
    app, leg = await _call_anna(
        harness, numcfg, Employee("answer", rings=True, answer_after=2.0, hangup_after=0.5)
    )
    rung = await harness.employee_rung("101")
    tone = await harness.wait_for(_ringback_started(leg), what="the ring tone")
    assert tone["_t"] - rung["_t"] < 1.5  # well before the answer, 2 s after ringing
    stopped = await harness.wait_for(
        lambda e: (
            e.get("type") == "PlaybackFinished" and e["playback"]["id"] == tone["playback"]["id"]
        ),
        what="the ring tone to stop",
    )
    bridged = await harness.bridged(leg)
    assert stopped["_t"] <= bridged["_t"] + 0.5
    await _finish(harness, app, leg)


async def test_a_leg_that_says_nothing_gets_the_tone_after_the_grace(
    harness: Harness, numcfg: Any
) -> None:
    app, leg = await _call_anna(
        harness, numcfg, Employee("answer", answer_after=2.0, hangup_after=0.5)
    )
    await harness.wait_for(_ringback_started(leg), what="the ring tone")
    await harness.bridged(leg)
    await _finish(harness, app, leg)


async def test_no_tone_for_a_phone_that_answers_before_it_would_be_heard(
    harness: Harness, numcfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A grace longer than the 0.5 s this employee takes, and no ringing said: no tone.
    monkeypatch.setattr(connect, "RINGBACK_GRACE_SECONDS", 5.0)
    app, leg = await _call_anna(
        harness, numcfg, Employee("answer", answer_after=0.5, hangup_after=0.5)
    )
    await harness.bridged(leg)
    await _finish(harness, app, leg)
    assert RING not in harness.media_heard(leg)
