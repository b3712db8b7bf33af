"""install-asterisk from the wheel, on the real rig (SPEC section 13): numcfg sees over
ARI that Asterisk lacks its prompts and says so in /ready; `numcfg install-asterisk`, run
from the wheel installed in a fresh venv, puts them in the chroot with the hold-music
classes of its own musiconhold snippet; then /ready is clear and a call hears the greeting
and the hold music installed that way.

The rig's own copies (docker/rig up) are removed first, so every file the call plays came
from the wheel; and the hold music goes to a folder no rig file names, so Asterisk can only
find it through the snippet. The rig's files are put back at the end (a later
`docker/rig up` would too).
"""

from __future__ import annotations

import array
import asyncio
import io
import math
import shutil
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.wheel import InstalledWheel, build_wheel, install_wheel

from .conftest import REPO, rig
from .harness import Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

SOUNDS = "/usr/share/asterisk/sounds"
WHEEL_MOH = "/usr/share/asterisk/moh-numcfg-wheel"  # named by the snippet only
READY_URL = "http://127.0.0.1:18090/ready"
# A musiconhold.conf as on an Asterisk that never had numcfg: no numcfg-<lang> classes.
PLAIN_MOH_CONF = "[general]\n\n[default]\nmode=files\ndirectory=/usr/share/asterisk/moh\n"
CONFIG = {
    "queues": {
        "sales": {"members": ["anna"], "max_wait": 6, "fallback": {"action": "hangup"}},
    },
    "numbers": {"paris": {"routing": {"greeting": "sound:numcfg/en/welcome", "queue": "sales"}}},
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> InstalledWheel:
    base = tmp_path_factory.mktemp("wheel")
    return install_wheel(build_wheel(base / "dist"), base / "venv")


@pytest.fixture
def bare_asterisk(asterisk_rig: str) -> Iterator[Path]:
    """The rig without numcfg's sounds and MOH classes; put back afterwards."""
    root = Path(asterisk_rig)
    etc = root / "etc/asterisk"
    moh_conf = etc / "musiconhold.conf"
    saved = moh_conf.read_bytes()
    rig_sounds = root / SOUNDS.lstrip("/") / "numcfg"
    rig_moh = root / "usr/share/asterisk/moh-numcfg"
    shutil.rmtree(rig_sounds)
    shutil.rmtree(rig_moh)
    moh_conf.write_text(PLAIN_MOH_CONF)
    rig("cli", "moh reload")
    try:
        yield root
    finally:
        moh_conf.write_bytes(saved)
        (etc / "numcfg-musiconhold.conf").unlink(missing_ok=True)
        shutil.rmtree(root / WHEEL_MOH.lstrip("/"), ignore_errors=True)
        shutil.rmtree(rig_sounds, ignore_errors=True)
        shutil.rmtree(rig_moh, ignore_errors=True)
        shutil.copytree(REPO / "sounds/build", rig_sounds)
        shutil.copytree(REPO / "sounds/build-moh", rig_moh)
        rig("cli", "moh reload")


def moh_class_files() -> dict[str, list[str]]:
    classes: dict[str, list[str]] = {}
    current = None
    for line in rig("cli", "moh show files").splitlines():
        line = line.strip()
        if line.startswith("Class:"):
            current = line.split(":", 1)[1].strip()
            classes.setdefault(current, [])
        elif line.startswith("File:") and current is not None:
            classes[current].append(line.split(":", 1)[1].strip())
    return classes


async def ready() -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(READY_URL) as resp:
        return resp.status, await resp.json()


async def test_prompts_installed_from_the_wheel_serve_a_call(
    harness: Harness, numcfg, wheel: InstalledWheel, bare_asterisk: Path, tmp_path: Path
) -> None:
    app = await numcfg(CONFIG)
    missing = await app.check_sounds()
    assert "numcfg/en/welcome" in missing and "numcfg/en/please-hold" in missing
    status, body = await ready()
    assert status == 503 and body["sounds"]["missing"] == missing
    assert any("numcfg install-asterisk" in reason for reason in body["reasons"])

    work = tmp_path / "elsewhere"  # no numcfg.yaml here: prompts and hold music only
    work.mkdir()
    installed = await asyncio.to_thread(
        subprocess.run,
        [
            str(wheel.numcfg),
            "install-asterisk",
            "--root",
            str(bare_asterisk),
            "--etc",
            "/etc/asterisk",
            "--sounds",
            SOUNDS,
            "--moh",
            WHEEL_MOH,
        ],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr
    assert f"wrote {bare_asterisk}{SOUNDS}/numcfg/en/welcome.wav" in installed.stdout
    rig("cli", "moh reload")
    classes = moh_class_files()
    assert classes.get("numcfg-en") == [
        f"{WHEEL_MOH}/en/{name}"
        for name in ("00-please-hold", "01-music", "02-please-hold", "03-music")
    ], classes

    assert await app.check_sounds() == []
    status, body = await ready()
    assert status == 200 and body["sounds"] == {"checked": True, "missing": []}, body

    leg = await harness.call("+33185000000")
    await harness.heard(leg, "sound:numcfg/en/welcome")
    finished = await harness.wait_for(
        lambda e: (
            e.get("type") == "PlaybackFinished"
            and e["playback"]["target_uri"] == f"channel:{leg.far_id}"
        ),
        what="the greeting to finish",
    )
    assert finished["playback"]["state"] == "done"
    # Nobody works: the caller waits in the queue on the wheel's hold music.
    audio = await harness.listen(leg.far_id, 3.0)
    with wave.open(io.BytesIO(audio)) as w:
        samples = array.array("h", w.readframes(w.getnframes()))
    rms = math.sqrt(sum(s * s for s in samples) / max(len(samples), 1))
    assert rms > 200, f"the caller on hold heard silence (rms {rms})"
    await harness.ended(leg, timeout=20)
    calls = await calls_done(app)
    assert calls[0]["route"] == ["greeting", "queue:sales", "hangup"], calls[0]["route"]
