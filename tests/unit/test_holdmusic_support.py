"""Shared by the hold-music tests: MP3 fixtures made with ffmpeg, a config in tmp.

Named test_holdmusic_* to sit with the tests it serves; it defines no tests itself.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from asterisk_bridge.config import Config, load_config

REPO = Path(__file__).resolve().parents[2]
ENV = {"NUMCFG_ARI_PASSWORD": "unit-test-secret"}
# Nothing listens on port 1: ARI calls fail fast instead of reaching a real rig.
CLOSED_ARI_URL = "http://127.0.0.1:1/ari"

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


def ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=120,
    )


def make_mp3(path: Path, *, channels: int = 1, seconds: float = 2, kbps: int = 64) -> Path:
    ffmpeg(
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
        "-ac", str(channels), "-c:a", "libmp3lame", "-b:a", f"{kbps}k", str(path),
    )  # fmt: skip
    return path


def with_channel_mode(source: Path, dest: Path, mode: int) -> Path:
    """Copy of an MP3 whose first frame header claims channel mode `mode` (0-3).

    ffmpeg's LAME picks plain stereo for a sine; this yields joint stereo and dual channel
    headers, which is all the validator reads.
    """
    data = bytearray(source.read_bytes())
    start = 0
    if data[:3] == b"ID3":  # ID3v2 size: 4 syncsafe bytes after a 6-byte header
        size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
        start = 10 + size
    assert data[start] == 0xFF and data[start + 1] & 0xE0 == 0xE0, "no frame sync"
    data[start + 3] = (data[start + 3] & 0x3F) | (mode << 6)
    dest.write_bytes(bytes(data))
    return dest


def make_fixtures(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    stereo = make_mp3(folder / "stereo.mp3", channels=2)
    wav_named_mp3 = folder / "really-a-wav.mp3"
    ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
        "-ac", "1", "-c:a", "pcm_s16le", "-f", "wav", str(wav_named_mp3),
    )  # fmt: skip
    return {
        "mono": make_mp3(folder / "mono.mp3"),
        "mono_other": make_mp3(folder / "mono-3s.mp3", seconds=3),
        "stereo": stereo,
        "joint_stereo": with_channel_mode(stereo, folder / "joint.mp3", 1),
        "dual_channel": with_channel_mode(stereo, folder / "dual.mp3", 2),
        # 60 s at 320 kbit/s is about 2.3 MB: over the limit, and a real mono MP3.
        "too_big": make_mp3(folder / "long.mp3", seconds=60, kbps=320),
        "wav": wav_named_mp3,
    }


def write_config(folder: Path, **overrides: Any) -> Path:
    """examples/numcfg.yaml copied into `folder`, with a closed ARI port and `overrides`
    merged into its top-level sections (storage paths, numbers)."""
    data = yaml.safe_load((REPO / "examples" / "numcfg.yaml").read_text())
    data["asterisk"]["ari_url"] = CLOSED_ARI_URL
    data["asterisk"]["password"] = "${NUMCFG_ARI_PASSWORD}"
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = folder / "numcfg.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load(path: Path) -> Config:
    return load_config(path, env=ENV)
