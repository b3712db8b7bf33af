"""Build hook: the wheel carries numcfg's rendered prompts and hold music (SPEC section 13).

pyproject.toml holds the metadata; this file only adds one step to `build_py`: render
sounds/prompts.yaml with sounds/render (espeak-ng + sox, see scripts/system-deps) into
asterisk_bridge/assets/ inside the build tree, so `pip install numcfg-*.whl` gives
`numcfg install-asterisk` everything it installs without the git checkout. An editable
install (`pip install -e .`) skips it: a checkout uses sounds/build, which docker/rig
renders.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
RENDER = HERE / "sounds" / "render"
# The two music tracks of the hold-music classes are the same for every language, so the
# wheel carries them once; `install-asterisk` lays out each class directory.
MUSIC_TRACKS = {"01-music.wav": "music-1.wav", "03-music.wav": "music-2.wav"}


class BuildPyWithSounds(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        assets = Path(self.build_lib) / "asterisk_bridge" / "assets"
        render_assets(assets)


def render_assets(assets: Path) -> None:
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(
                f"building numcfg needs {tool} to render its prompts "
                "(Debian: apt-get install espeak-ng sox; see scripts/system-deps)"
            )
    prompts = assets / "prompts"
    shutil.rmtree(assets, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="numcfg-build-moh-") as moh:
        # No --moh-music: the synthesized bed, so the wheel ships no third-party music.
        subprocess.run(
            [sys.executable, str(RENDER), "--out", str(prompts), "--moh-out", moh, "--force"],
            check=True,
        )
        (assets / "moh").mkdir(parents=True)
        for source, name in MUSIC_TRACKS.items():
            shutil.copyfile(Path(moh) / "en" / source, assets / "moh" / name)


setup(cmdclass={"build_py": BuildPyWithSounds})
