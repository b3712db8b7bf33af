"""The wheel as a user gets it (SPEC section 13): it carries the rendered prompts and hold
music, installs on Python 3.11 and later, and its `numcfg install-asterisk`, run from a
fresh venv outside the repository, fills a scratch Asterisk tree, then changes nothing."""

from __future__ import annotations

import configparser
import email.parser
import os
import shutil
import subprocess
import wave
import zipfile
from pathlib import Path

import pytest
import yaml

from asterisk_bridge.install.assets import NUMBER_PROMPTS
from tests.wheel import REPO, InstalledWheel

LANGS = ["de", "en", "es", "fr", "pt", "ru", "uk"]
PROMPTS = sorted(
    [*yaml.safe_load((REPO / "sounds/prompts.yaml").read_text(encoding="utf-8")), *NUMBER_PROMPTS]
)
MOH_FILES = ["00-please-hold.wav", "01-music.wav", "02-please-hold.wav", "03-music.wav"]


def run(installed: InstalledWheel, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMCFG_")}
    env["NUMCFG_ARI_PASSWORD"] = "a-secret"
    return subprocess.run(
        [str(installed.numcfg), *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def newer_pythons() -> list[str]:
    """Python 3.12+ interpreters that run here (on PATH, or pyenv's unselected ones)."""
    found = []
    for minor in (12, 13, 14):
        candidates = [shutil.which(f"python3.{minor}")]
        candidates += [str(p) for p in Path.home().glob(f".pyenv/versions/3.{minor}.*/bin/python3")]
        for candidate in filter(None, candidates):
            probe = subprocess.run([candidate, "-m", "pip", "--version"], capture_output=True)
            if probe.returncode == 0:
                found.append(candidate)
                break
    return found


def test_the_wheel_carries_prompts_hold_music_and_migrations(
    installed_wheel: InstalledWheel,
) -> None:
    with zipfile.ZipFile(installed_wheel.wheel) as wheel:
        names = set(wheel.namelist())
    for lang in LANGS:
        for prompt in PROMPTS:
            assert f"asterisk_bridge/assets/prompts/{lang}/{prompt}.wav" in names
    assert {
        "asterisk_bridge/assets/moh/music-1.wav",
        "asterisk_bridge/assets/moh/music-2.wav",
    } <= names
    assert "asterisk_bridge/store/migrations/script.py.mako" in names
    assert not [n for n in names if n.endswith(".render-stamp")]


def test_it_installs_on_python_3_11_and_later(installed_wheel: InstalledWheel) -> None:
    with zipfile.ZipFile(installed_wheel.wheel) as wheel:
        (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(wheel.read(meta).decode())
    assert metadata["Requires-Python"] == ">=3.11"
    # And pip agrees, on every newer interpreter this machine has.
    newer = newer_pythons()
    if not newer:
        pytest.skip("no Python 3.12+ on this machine to try the wheel with")
    for python in newer:
        result = subprocess.run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--no-deps",
                "-q",
                str(installed_wheel.wheel),
            ],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"{python}: {result.stderr}"


def test_install_asterisk_from_the_wheel_fills_a_scratch_asterisk_then_changes_nothing(
    installed_wheel: InstalledWheel, tmp_path: Path
) -> None:
    work = tmp_path / "work"  # outside the repository: nothing can come from the checkout
    work.mkdir()
    shutil.copy(REPO / "examples/numcfg.yaml", work / "numcfg.yaml")
    root = tmp_path / "asterisk"
    args = [
        "install-asterisk",
        "-c",
        "numcfg.yaml",
        "--root",
        str(root),
        "--etc",
        "/etc/asterisk",
        "--sounds",
        "/usr/share/asterisk/sounds",
    ]
    first = run(installed_wheel, *args, cwd=work)
    assert first.returncode == 0, first.stderr
    sounds = root / "usr/share/asterisk/sounds/numcfg"
    moh = root / "usr/share/asterisk/moh-numcfg"
    etc = root / "etc/asterisk"
    for lang in LANGS:
        assert sorted(p.stem for p in (sounds / lang).iterdir()) == PROMPTS
        assert sorted(p.name for p in (moh / lang).iterdir()) == MOH_FILES
        # Asterisk's "wav": 8 kHz mono 16-bit PCM, and not empty.
        for path in [*(sounds / lang).iterdir(), *(moh / lang).iterdir()]:
            with wave.open(str(path)) as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
                assert w.getnframes() > 4000, path
        assert f"wrote {sounds / lang / 'welcome.wav'}" in first.stdout
    classes = configparser.ConfigParser()
    classes.read(etc / "numcfg-musiconhold.conf")
    assert classes.sections() == [f"numcfg-{lang}" for lang in LANGS]
    assert classes["numcfg-en"]["directory"] == "/usr/share/asterisk/moh-numcfg/en"
    assert "Stasis(numcfg,inbound,paris)" in (etc / "numcfg-dialplan.conf").read_text()
    assert (etc / "extensions.conf").read_text().endswith("#include numcfg-dialplan.conf\n")
    assert (etc / "musiconhold.conf").read_text().endswith("#include numcfg-musiconhold.conf\n")
    files = len(LANGS) * (len(PROMPTS) + len(MOH_FILES)) + 2
    assert first.stdout.splitlines()[-1].startswith(
        f"install-asterisk: {files} written, 0 unchanged"
    )

    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    second = run(installed_wheel, *args, cwd=work)
    assert second.returncode == 0, second.stderr
    assert second.stdout == f"install-asterisk: 0 written, {files} unchanged\n"
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == mtimes


def test_the_installed_command_answers_without_the_checkout(
    installed_wheel: InstalledWheel, tmp_path: Path
) -> None:
    version = run(installed_wheel, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("numcfg 0.")
    located = subprocess.run(
        [
            str(installed_wheel.python),
            "-c",
            "import asterisk_bridge; print(asterisk_bridge.__file__)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(located.stdout.strip()).is_relative_to(installed_wheel.venv)
