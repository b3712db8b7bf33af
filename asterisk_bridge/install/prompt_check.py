"""Does Asterisk have the sounds numcfg will play? Asked over ARI at start (and now and
then), so a missing `numcfg install-asterisk` shows in the log and in /ready instead of as
silent calls.

Required: numcfg's own prompts in every language a number speaks, and every `sound:`
reference in the config (greetings, menu prompts, hang-up messages).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..ari.client import AriClient, SoundInfo
from ..config.schema import Config
from .assets import ALL_PROMPTS

SOUND_PREFIX = "sound:"


def required_sounds(config: Config) -> set[str]:
    """Media names (what follows `sound:`) the config will have numcfg play."""
    languages = {"en"} | {number.spoken_language for number in config.numbers.values()}
    needed = {f"numcfg/{lang}/{name}" for lang in languages for name in ALL_PROMPTS}
    needed |= {ref.removeprefix(SOUND_PREFIX) for ref in _sound_refs(config.model_dump())}
    return needed


def missing_sounds(required: Iterable[str], sounds: Iterable[SoundInfo]) -> list[str]:
    available: set[str] = set()
    for sound in sounds:
        available |= sound.media_names()
    return sorted(set(required) - available)


async def check_sounds(client: AriClient, config: Config) -> list[str]:
    """The required sounds Asterisk does not have (raises AriError when it cannot say)."""
    return missing_sounds(required_sounds(config), await client.sounds())


def _sound_refs(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if value.startswith(SOUND_PREFIX):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _sound_refs(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _sound_refs(item)
