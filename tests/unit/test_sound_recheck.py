"""Asterisk's sound list (GET /sounds: every sound it has, 107 kB on the rig) is asked
for again only while a sound is missing or the config changed, else hourly (issue 15)."""

from __future__ import annotations

import asyncio

import pytest

from asterisk_bridge import app as app_module
from asterisk_bridge.install.prompt_check import required_sounds
from tests.fakeari.engine_fixtures import StartEngine

pytest_plugins = ["tests.fakeari.fixtures", "tests.fakeari.engine_fixtures"]


def sound_list(names: set[str]) -> list[dict]:
    return [{"id": name, "formats": [{"language": "en", "format": "wav"}]} for name in names]


@pytest.mark.parametrize("all_there", [True, False])
async def test_the_sound_list_is_asked_again_only_while_a_sound_is_missing(
    start_engine_app: StartEngine, monkeypatch: pytest.MonkeyPatch, all_there: bool
) -> None:
    monkeypatch.setattr(app_module, "SOUND_CHECK_SECONDS", 0.05)
    engine = await start_engine_app()
    needed = required_sounds(engine.app.config_holder.current)
    if not all_there:
        needed = set(sorted(needed)[1:])
    engine.fake.respond("GET", "/sounds", body=sound_list(needed))
    await engine.wait_for(lambda: engine.app.missing_sounds is not None, what="a check")
    since = len(engine.fake.requests)
    await asyncio.sleep(0.5)  # ten ticks of the watcher
    asked = len(engine.requests("GET", "/sounds", since=since))
    if all_there:
        assert engine.app.missing_sounds == []
        assert asked == 0
    else:
        assert len(engine.app.missing_sounds or []) == 1
        assert asked >= 4
