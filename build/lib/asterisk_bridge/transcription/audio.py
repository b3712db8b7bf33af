"""Recordings as the PCM pocketsphinx's model was trained on: 16 kHz, mono, 16-bit.

Asterisk records 8 kHz WAV; ffmpeg (already numcfg's converter for hold music) resamples
it (its default resampler read as well as sox's here) and lays a faint noise floor under it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Final

from .base import TranscriptionError

SAMPLE_RATE: Final = 16000
# Peak of the white noise mixed in (about -66 dBFS, far below speech). Asterisk's bridge
# recordings hold stretches of exact digital silence, on which pocketsphinx's noise
# estimate and cepstral mean go wrong: here it lost half the words of a clean sentence,
# and got 8 or 9 of 10 back with this floor. Seeded: the same recording, the same text.
NOISE_FLOOR: Final = 0.0005
_FILTER: Final = (
    f"[0:a]aresample={SAMPLE_RATE},aformat=channel_layouts=mono[speech];"
    f"anoisesrc=a={NOISE_FLOOR}:c=white:r={SAMPLE_RATE}:s=1[floor];"
    "[speech][floor]amix=inputs=2:duration=first:normalize=0"
)
# ffmpeg resamples an hour of telephone audio in a few seconds; a hung one must not hold
# the (single) transcription worker forever.
CONVERT_TIMEOUT_S: Final = 300.0


def pcm16k(path: Path) -> bytes:
    """The recording at `path` as raw signed 16-bit little-endian mono PCM at 16 kHz."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise TranscriptionError("ffmpeg is not installed: recordings cannot be converted")
    command = [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
        "-i", str(path), "-filter_complex", _FILTER,
        "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-",
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, timeout=CONVERT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise TranscriptionError(f"ffmpeg took over {CONVERT_TIMEOUT_S:.0f} s") from exc
    except OSError as exc:
        raise TranscriptionError(f"cannot run ffmpeg: {exc}") from exc
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        why = lines[-1] if lines else f"exit status {done.returncode}"
        raise TranscriptionError(f"ffmpeg cannot read {path.name}: {why}")
    return done.stdout
