"""numcfg as a user installs it: the wheel built from this tree, installed into a fresh
venv outside the repository (shared by tests/packaging and the rig test of
install-asterisk)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# pip fetches setuptools for the isolated build and numcfg's dependencies (from its cache
# when warm): minutes on a cold machine, well under one otherwise.
PIP_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class InstalledWheel:
    wheel: Path
    venv: Path

    @property
    def numcfg(self) -> Path:
        return self.venv / "bin" / "numcfg"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


# Not part of the source: a build from a copy without them cannot pick up stale outputs.
# (sounds/build and sounds/build-moh are the checkout's own renders.)
NOT_SOURCE = {".git", ".venv", "build", "dist", "__pycache__", "build-moh"}


def _not_source(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in NOT_SOURCE or n.endswith((".egg-info", "_cache"))}


def build_wheel(out: Path) -> Path:
    """`pip wheel` of a copy of this tree (uncommitted changes included)."""
    source = out / "source"
    shutil.copytree(REPO, source, ignore=_not_source)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
        timeout=PIP_TIMEOUT_SECONDS,
    )
    (wheel,) = out.glob("numcfg-*.whl")
    return wheel


def install_wheel(wheel: Path, venv: Path) -> InstalledWheel:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", str(wheel)],
        check=True,
        timeout=PIP_TIMEOUT_SECONDS,
    )
    return InstalledWheel(wheel, venv)
