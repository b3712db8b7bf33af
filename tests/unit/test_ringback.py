"""When the caller hears the ring tone while an employee's phone rings (against FakeAri;
the same on the rig in tests/integration/test_ringback.py): at the phone's first sign of
ringing, after RINGBACK_GRACE_SECONDS when the leg says nothing, never for a phone that
answers before then."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from asterisk_bridge.calls.core import connect
from tests.fakeari.engine import StartEngine

pytest_plugins = ["tests.fakeari.fixtures", "tests.fakeari.engine_fixtures"]

MENU = "sound:numcfg/en/ivr-main"
FLOW = {
    "ivr_menus": {
        "main": {"prompt": MENU, "options": {"1": {"action": "employee", "employee": "anna"}}}
    },
    "numbers": {"paris": {"routing": {"greeting": None, "ivr": "main", "queue": None}}},
}


async def ring_anna(start_engine_app: StartEngine, *, phone_rings: bool) -> tuple[Any, str, str]:
    engine = await start_engine_app(FLOW)
    engine.working("anna")
    engine.fake.legs_ring = phone_rings
    caller = await engine.incoming("paris")
    await engine.wait_for(lambda: MENU in engine.played(caller), what="the menu prompt")
    await engine.press(caller, "1")
    return engine, caller, await engine.next_leg()


async def answer_and_end(engine: Any, caller: str, leg: str) -> dict[str, Any]:
    await engine.answer_leg(leg)
    await engine.wait_bridged(caller, leg)
    await engine.hangup(leg)
    await engine.wait_for(lambda: not engine.app.services.active, what="the call to end")
    (call,) = await engine.calls_done()
    assert call["disposition"] == "answered"
    await engine.assert_idle()  # the tone, when played, was stopped
    return call


async def test_a_phone_that_says_it_rings_gets_the_tone_before_the_grace(
    start_engine_app: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connect, "RINGBACK_GRACE_SECONDS", 30.0)
    engine, caller, leg = await ring_anna(start_engine_app, phone_rings=True)
    await engine.wait_for(lambda: "tone:ring" in engine.played(caller), what="the ring tone")
    await answer_and_end(engine, caller, leg)


async def test_a_leg_that_says_nothing_gets_the_tone_after_the_grace(
    start_engine_app: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connect, "RINGBACK_GRACE_SECONDS", 0.3)
    engine, caller, leg = await ring_anna(start_engine_app, phone_rings=False)
    await asyncio.sleep(0.1)
    assert "tone:ring" not in engine.played(caller)
    await engine.wait_for(lambda: "tone:ring" in engine.played(caller), what="the ring tone")
    await answer_and_end(engine, caller, leg)


async def test_a_phone_answering_before_the_grace_gets_no_tone(
    start_engine_app: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connect, "RINGBACK_GRACE_SECONDS", 30.0)
    engine, caller, leg = await ring_anna(start_engine_app, phone_rings=False)
    await answer_and_end(engine, caller, leg)
    assert "tone:ring" not in engine.played(caller)
