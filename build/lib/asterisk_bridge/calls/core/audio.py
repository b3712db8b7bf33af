"""numcfg's copies of what Asterisk recorded: fetched from its spool, written atomically
and privately, then removed from the spool (SPEC section 4: recordings, voicemail)."""

from __future__ import annotations

import asyncio
import logging
import os
import wave
from pathlib import Path

from ...ari.client import AriClient
from ...ari.errors import AriError
from ...ari.record import discard_stored, fetch_stored

log = logging.getLogger("numcfg.calls")

# Recordings are conversations with clients: readable by numcfg's user only.
FILE_MODE = 0o600
FOLDER_MODE = 0o700


async def keep_recording(client: AriClient, name: str, target: Path) -> float | None:
    """Fetch recording `name` into `target`; its length in seconds, or None when there
    was no file to fetch. The spool copy is removed only once ours is safely written."""
    try:
        audio = await fetch_stored(client, name)
    except AriError as exc:
        log.warning("recording %s unavailable: %s", name, exc)
        return None
    seconds = await asyncio.to_thread(write_audio, target, audio)
    await discard_stored(client, name)
    return seconds


def write_audio(target: Path, data: bytes) -> float:
    """Write `data` atomically with private permissions; the WAV's length in seconds."""
    target.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    tmp.replace(target)
    try:
        with wave.open(str(target)) as wav:
            return round(wav.getnframes() / float(wav.getframerate()), 2)
    except (wave.Error, EOFError):
        return 0.0
