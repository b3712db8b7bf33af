"""Where numcfg's own sounds are: inside the wheel, or in a source checkout.

A wheel carries asterisk_bridge/assets/ (setup.py renders it at build time):
  prompts/<lang>/<name>.wav   the prompts played as sound:numcfg/<lang>/<name>
  moh/music-1.wav, music-2.wav the music of the numcfg-<lang> hold-music classes
A checkout (`pip install -e .`) has sounds/build/ and sounds/build-moh/<lang>/ instead,
rendered by sounds/render (docker/rig runs it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PACKAGED = PACKAGE_DIR / "assets"
CHECKOUT_SOUNDS = PACKAGE_DIR.parent / "sounds"

# The prompts numcfg plays (sounds/prompts.yaml; tests/unit/test_prompt_check.py keeps the
# two the same).
PROMPT_NAMES: tuple[str, ...] = (
    "welcome",
    "recording-warning",
    "not-in-service",
    "invalid-extension",
    "ivr-main",
    "ivr-invalid",
    "voicemail-intro",
    "after-hours",
    "rating",
    "rating-thanks",
    "please-hold",
    "queue-position",
    "goodbye",
    "transfer",
    "virtual-hold-offer",
    "virtual-hold-confirm",
    "key-0",
    "key-star",
    "key-hash",
)
# Spoken queue positions, rendered by sounds/render beside prompts.yaml's prompts
# (POSITION_NUMBERS there; calls/queue.py's POSITION_PROMPTS).
NUMBER_PROMPTS: tuple[str, ...] = tuple(f"number-{n}" for n in range(1, 21))
# Everything sounds/render renders per language, and so what numcfg checks Asterisk has.
ALL_PROMPTS: tuple[str, ...] = PROMPT_NAMES + NUMBER_PROMPTS
# The hold-music prompt each class opens with (sounds/render: HOLD_PROMPT).
HOLD_PROMPT = "please-hold"
# One numcfg-<lang> class directory, in play order (sort=alpha): "please hold" first, as
# sounds/render lays out sounds/build-moh/<lang>/. The value names what the file is: the
# language's hold prompt, or music track 0 or 1.
MOH_LAYOUT: dict[str, str | int] = {
    "00-please-hold.wav": HOLD_PROMPT,
    "01-music.wav": 0,
    "02-please-hold.wav": HOLD_PROMPT,
    "03-music.wav": 1,
}


class AssetsMissing(Exception):
    """This numcfg has no rendered sounds; the text says how to get them."""


@dataclass(frozen=True, slots=True)
class Assets:
    prompts: Path  # <lang>/<name>.wav
    music: tuple[Path, Path]

    def languages(self) -> list[str]:
        return sorted(p.name for p in self.prompts.iterdir() if p.is_dir())

    def prompt_files(self, lang: str) -> list[Path]:
        return sorted((self.prompts / lang).glob("*.wav"))

    def moh_sources(self, lang: str) -> dict[str, Path]:
        """File name in the numcfg-<lang> class directory -> where its content is."""
        return {
            name: self.prompts / lang / f"{what}.wav" if isinstance(what, str) else self.music[what]
            for name, what in MOH_LAYOUT.items()
        }


def find_assets() -> Assets:
    packaged = Assets(
        PACKAGED / "prompts", (PACKAGED / "moh/music-1.wav", PACKAGED / "moh/music-2.wav")
    )
    if _complete(packaged):
        return packaged
    moh_en = CHECKOUT_SOUNDS / "build-moh" / "en"
    checkout = Assets(CHECKOUT_SOUNDS / "build", (moh_en / "01-music.wav", moh_en / "03-music.wav"))
    if _complete(checkout):
        return checkout
    if (CHECKOUT_SOUNDS / "render").is_file():
        raise AssetsMissing(
            f"no rendered prompts in {CHECKOUT_SOUNDS}: run sounds/render (needs espeak-ng, sox)"
        )
    raise AssetsMissing(
        f"this numcfg was built without its prompts ({PACKAGED} is missing): "
        "reinstall it from a wheel built with espeak-ng and sox"
    )


def _complete(assets: Assets) -> bool:
    return (
        assets.prompts.is_dir()
        and all(track.is_file() for track in assets.music)
        and any(assets.prompts.glob("*/*.wav"))
    )
