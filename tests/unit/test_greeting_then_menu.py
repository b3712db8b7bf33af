"""A greeting followed by the number's IVR menu is one playback of both (issue 15): the
caller hears the same, and the menu neither plays its prompt twice nor loses a key."""

from __future__ import annotations

from typing import Any

from tests.fakeari.engine_fixtures import StartEngine

pytest_plugins = ["tests.fakeari.fixtures", "tests.fakeari.engine_fixtures"]

GREETING = "sound:numcfg/en/goodbye"
MENU_PROMPT = "sound:numcfg/en/ivr-main"
INVALID = "sound:numcfg/en/ivr-invalid"
FLOW = {
    "ivr_menus": {
        "main": {
            "prompt": MENU_PROMPT,
            "options": {"1": {"action": "employee", "employee": "anna"}},
        }
    },
    "numbers": {"paris": {"routing": {"greeting": GREETING, "ivr": "main", "queue": None}}},
}


async def connect_on_1(engine: Any, caller: str) -> dict[str, Any]:
    await engine.press(caller, "1")
    leg = await engine.next_leg()
    await engine.answer_leg(leg)
    await engine.wait_bridged(caller, leg)
    await engine.hangup(leg)
    (call,) = await engine.calls_done()
    return call


async def test_greeting_and_menu_prompt_play_as_one_and_the_menu_then_waits_for_a_key(
    start_engine_app: StartEngine,
) -> None:
    engine = await start_engine_app(FLOW)
    engine.working("anna")
    caller = await engine.incoming("paris")
    plays = await engine.wait_request("POST", rf"/channels/{caller}/play(/[^/]+)?")
    assert plays.params["media"] == f"{GREETING},{MENU_PROMPT}"
    # The fake finishes the playback at once: the menu waits for a key, prompt not replayed.
    await engine.wait_for(lambda: engine.app.services.active, what="the call")
    call = await connect_on_1(engine, caller)
    assert engine.played(caller) == [GREETING, MENU_PROMPT, "tone:ring"]
    assert call["route"] == ["greeting", "ivr:main:1", "employee:anna"]
    await engine.assert_idle()


async def test_a_wrong_key_during_the_playback_gets_the_menus_invalid_then_its_prompt(
    start_engine_app: StartEngine,
) -> None:
    engine = await start_engine_app(FLOW)
    engine.working("anna")
    engine.plan_playback(GREETING, "hold")
    caller = await engine.incoming("paris")
    await engine.wait_for(lambda: GREETING in engine.played(caller), what="the greeting")
    await engine.press(caller, "9")
    await engine.wait_for(
        lambda: engine.played(caller).count(MENU_PROMPT) == 2, what="the prompt again"
    )
    call = await connect_on_1(engine, caller)
    assert engine.played(caller) == [GREETING, MENU_PROMPT, INVALID, MENU_PROMPT, "tone:ring"]
    assert call["route"] == ["greeting", "ivr:main:1", "employee:anna"]
    await engine.assert_idle()
