"""Which sounds numcfg needs from Asterisk, and which of them GET /sounds lacks. The
sound entries below have the shapes Asterisk 22.10 answered on the rig (a prompt of
sounds/numcfg/en/ is id "en/welcome" in "language" numcfg); the live check is proved in
tests/integration/test_install_rig.py."""

from __future__ import annotations

from pathlib import Path

import yaml

from asterisk_bridge.ari.client import SoundInfo
from asterisk_bridge.config import load_config_text
from asterisk_bridge.install.assets import ALL_PROMPTS, PROMPT_NAMES
from asterisk_bridge.install.prompt_check import missing_sounds, required_sounds

REPO = Path(__file__).resolve().parents[2]

CONFIG = """
version: 1
asterisk: {ari_url: "http://127.0.0.1:8088/ari", username: numcfg, password: secret-pw}
ivr_menus:
  main:
    prompt: sound:custom/menu
    options: {"0": {action: hangup, message: "sound:goodbye-custom"}}
    on_failure: {action: hangup}
numbers:
  paris:
    number: "+33185000000"
    routing: {greeting: sound:numcfg/fr/welcome, ivr: main}
    hold_music: {language: fr}
  berlin:
    number: "+4930123456"
"""


def sound(id_: str, *languages: str) -> SoundInfo:
    return SoundInfo.from_json(
        {"id": id_, "formats": [{"language": lang, "format": "slin"} for lang in languages]}
    )


def test_the_prompt_list_is_the_one_sounds_render_renders() -> None:
    rendered = yaml.safe_load((REPO / "sounds/prompts.yaml").read_text(encoding="utf-8"))
    assert sorted(PROMPT_NAMES) == sorted(rendered)


def test_numcfgs_prompts_in_each_spoken_language_and_every_configured_sound() -> None:
    needed = required_sounds(load_config_text(CONFIG))
    # English always (the fallback language), French for paris; berlin speaks English.
    assert {f"numcfg/{lang}/{name}" for lang in ("en", "fr") for name in ALL_PROMPTS} <= needed
    assert not any(name.startswith("numcfg/de/") for name in needed)
    assert {"custom/menu", "goodbye-custom", "numcfg/fr/welcome"} <= needed
    assert len(needed) == 2 * len(ALL_PROMPTS) + 2


def test_a_sound_counts_under_the_names_asterisk_plays_it_by() -> None:
    sounds = [
        sound("en/welcome", "numcfg"),  # sounds/numcfg/en/welcome.wav
        sound("beep", "en", "en_US"),  # sounds/en/beep.wav: played as sound:beep
        sound("digits/1", "en"),
    ]
    required = ["numcfg/en/welcome", "beep", "digits/1", "numcfg/fr/welcome", "en/welcome2"]
    assert missing_sounds(required, sounds) == ["en/welcome2", "numcfg/fr/welcome"]
    assert missing_sounds(required[:3], sounds) == []
