"""Inbound call flow on the real rig (issue 4): hours, warning, greeting with extension
dialing, SIP To, IVR, voicemail, forwarding, call details."""

from __future__ import annotations

import asyncio
import wave
from datetime import UTC, datetime
from pathlib import Path

import pytest

from .harness import Employee, Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

WELCOME = "sound:numcfg/en/welcome"
# Monday 2026-11-30 10:00 and Sunday 2026-11-29 10:00, Paris time (UTC+1 in winter).
MONDAY_OPEN = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SUNDAY_CLOSED = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)

OFFICE = {"office": {"timezone": "Europe/Paris", "week": {"mon": "09:00-18:00"}}}


def paris(**overrides: object) -> dict:
    number = {
        "number": "+33185000000",
        "name": "Paris main line",
        "routing": {"greeting": WELCOME},
        "backup_number": "+33600000001",
    }
    number.update(overrides)
    return {"numbers": {"paris": number}}


# -- working hours -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "open_"), [(MONDAY_OPEN, True), (SUNDAY_CLOSED, False)], ids=["open", "closed"]
)
async def test_working_hours_decide_between_greeting_and_after_hours(
    harness: Harness, numcfg, now: datetime, open_: bool
) -> None:
    config = paris(
        working_hours={
            "schedule": "office",
            "after_hours": {"action": "hangup", "message": "sound:numcfg/en/after-hours"},
        }
    )
    app = await numcfg({**config, "schedules": OFFICE})
    app.services.clock = lambda: now
    leg = await harness.call("+33185000000")
    await harness.ended(leg)
    (call,) = await calls_done(app)
    heard = harness.media_heard(leg)
    if open_:
        assert heard == [WELCOME]
        assert call["route"] == ["greeting", "hangup"]
        assert call["disposition"] == "missed"
    else:
        assert heard == ["sound:numcfg/en/after-hours"]
        assert call["route"] == ["after_hours", "hangup"]
        assert call["disposition"] == "after_hours"


# -- recording warning ---------------------------------------------------------------------


async def test_recording_warning_plays_before_the_greeting(harness: Harness, numcfg) -> None:
    app = await numcfg(paris(recording={"record_all": True, "warning": True}))
    leg = await harness.call("+33185000000")
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert harness.media_heard(leg) == ["sound:numcfg/en/recording-warning", WELCOME]
    assert call["route"][:2] == ["warning", "greeting"]


async def test_no_warning_when_the_call_will_not_be_recorded(harness: Harness, numcfg) -> None:
    app = await numcfg(paris(recording={"record_all": False, "warning": True}))
    leg = await harness.call("+33185000000")
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert harness.media_heard(leg) == [WELCOME]
    assert call["recording_skipped"] == "disabled"


# -- greeting with extension dialing ---------------------------------------------------------


def with_extensions(no_answer: str = "continue", **routing: object) -> dict:
    return paris(
        routing={
            "greeting": WELCOME,
            "extension_dialing": {"enabled": True, "ring_time": 3, "no_answer": no_answer},
            **routing,
        }
    )


async def test_extension_dialed_during_greeting_rings_and_bridges_the_employee(
    harness: Harness, numcfg
) -> None:
    app = await numcfg(with_extensions())
    harness.employees["101"] = Employee("answer", answer_after=0.3, hangup_after=1.0)
    leg = await harness.call("+33185000000")
    await harness.heard(leg, WELCOME)
    await harness.press(leg, "101")
    await harness.employee_rung("101")
    await harness.bridged(leg)
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["route"] == ["greeting", "extension:101", "employee:anna"]
    assert call["disposition"] == "answered"
    assert call["employee"] == "anna"
    assert call["answered_at"] is not None
    # The digits cut the greeting (5.8 s long): it did not play to its end.
    greeting = [
        e
        for e in harness.events
        if e.get("type") in ("PlaybackStarted", "PlaybackFinished")
        and e["playback"]["target_uri"] == f"channel:{leg.far_id}"
        and e["playback"]["media_uri"] == WELCOME
    ]
    assert [e["type"] for e in greeting] == ["PlaybackStarted", "PlaybackFinished"]
    assert greeting[1]["_t"] - greeting[0]["_t"] < 5.0


@pytest.mark.parametrize("no_answer", ["continue", "forward_to_mobile", "voicemail"])
async def test_extension_not_answered_follows_no_answer(
    harness: Harness, numcfg, no_answer: str, tmp_path: Path
) -> None:
    app = await numcfg(with_extensions(no_answer))
    harness.employees["101"] = Employee("ignore")
    leg = await harness.call("+33185000000")
    await harness.heard(leg, WELCOME)
    await harness.press(leg, "101#")
    await harness.employee_rung("101")
    if no_answer == "forward_to_mobile":
        await harness.trunk_rung("+33612340101")  # anna's mobile, through the trunk
        await harness.bridged(leg)
        await harness.hangup(leg)
    elif no_answer == "voicemail":
        await harness.heard(leg, "sound:numcfg/en/voicemail-intro")
        await harness.wait_for(
            lambda e: (
                e.get("type") == "PlaybackFinished"
                and e["playback"]["media_uri"] == "sound:numcfg/en/voicemail-intro"
            ),
            what="the voicemail prompt to end",
        )
        await asyncio.sleep(1.0)  # the beep
        await harness.speak(leg)
        await asyncio.sleep(2.0)
        await harness.hangup(leg)
    await harness.ended(leg, timeout=30)
    (call,) = await calls_done(app)
    assert call["route"][:2] == ["greeting", "extension:101"]
    match no_answer:
        case "continue":
            assert call["route"][2:] == ["hangup"]
            assert call["disposition"] == "missed"
        case "forward_to_mobile":
            assert call["route"][2:] == ["mobile:anna"]
            assert call["disposition"] == "forwarded"
        case "voicemail":
            assert call["route"][2:] == ["voicemail:anna"]
            assert call["disposition"] == "voicemail"
            message = tmp_path / "voicemail" / f"{call['id']}.wav"
            with wave.open(str(message)) as wav:
                assert wav.getnframes() / wav.getframerate() > 1.0


async def test_unknown_extension_hears_invalid_extension_and_flow_goes_on(
    harness: Harness, numcfg
) -> None:
    app = await numcfg(with_extensions())
    leg = await harness.call("+33185000000")
    await harness.heard(leg, WELCOME)
    await harness.press(leg, "999#")
    await harness.heard(leg, "sound:numcfg/en/invalid-extension")
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["route"] == ["greeting", "hangup"]
    assert harness.employees == {}


# -- SIP To: header --------------------------------------------------------------------------


async def test_sip_to_header_rings_that_employee_over_real_pjsip(harness: Harness, numcfg) -> None:
    app = await numcfg(
        {
            "numbers": {
                "pbx": {
                    "number": "+33185000009",
                    "connection": "sip_pbx",
                    "routing": {"sip_to_header": True},
                }
            }
        }
    )
    harness.employees["102"] = Employee("answer", answer_after=0.3, hangup_after=1.0)
    # A real INVITE over UDP on loopback; its To: header is <sip:102@127.0.0.1:5060>.
    await harness.client.originate(
        endpoint="PJSIP/pbx/sip:102@127.0.0.1:5060",
        channel_id="sipcaller-1",
        app="numcfg-test",
        app_args="caller",
        caller_id="+33612345678",
    )
    await harness.employee_rung("102")
    await harness.wait_for(
        lambda e: e.get("type") == "ChannelDestroyed" and e["channel"]["id"] == "sipcaller-1",
        what="the SIP call to end",
    )
    (call,) = await calls_done(app)
    assert call["route"] == ["sip_to:102", "employee:boris"]
    assert call["disposition"] == "answered"
