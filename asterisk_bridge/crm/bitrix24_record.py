"""A call's recording to Bitrix24 (telephony.externalCall.attachRecord), after finish.

A WAV of a conversation is about 1 MB a minute; Bitrix24 takes MP3 or WAV, so a large WAV
is converted to MP3 first (ffmpeg, as for hold music) and sent with the two-step upload the
portal offers (attachRecord with FILENAME only answers an uploadUrl for the file). Small
files, and portals that offer no uploadUrl, get the file inline (base64 FILE_CONTENT).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("numcfg.crm.bitrix24")

ATTACH = "telephony.externalCall.attachRecord"
# Bitrix24 refuses recordings in any other format.
RECORD_EXTENSIONS = (".mp3", ".wav")
# Below this a file goes inline in the JSON request (base64 adds a third): half a minute of
# 8 kHz WAV. Larger ones are converted and uploaded separately.
INLINE_MAX_BYTES = 512 * 1024
# Uploading a recording takes longer than a routing look-up may. It runs after the call.
ATTACH_RECORD_TIMEOUT_S = 60.0
# ffmpeg encodes an hour of 8 kHz speech in a few seconds; a hung one must not hold the
# journal of the call forever.
MP3_TIMEOUT_S = 120.0
# Speech at 8 kHz: 32 kbit/s mono MP3 is a tenth of the WAV and still clear.
MP3_BITRATE = "32k"

Rest = Callable[..., Awaitable[Any]]
Upload = Callable[[str, str, str, bytes], Awaitable[None]]


async def upload_recording(rest: Rest, remote_id: str, path: Path, upload: Upload | None) -> None:
    """Attach `path` to the Bitrix24 call `remote_id`; CrmError on failure."""
    if path.suffix.lower() not in RECORD_EXTENSIONS:
        log.warning("recording %s is not mp3 or wav; Bitrix24 would refuse it", path.name)
        return
    content = await asyncio.to_thread(path.read_bytes)
    name = path.name
    large = len(content) > INLINE_MAX_BYTES
    if large and path.suffix.lower() == ".wav":
        mp3 = await asyncio.to_thread(to_mp3, content)
        if mp3 is not None:
            content, name = mp3, path.with_suffix(".mp3").name
    if large and upload is not None:
        offer = await rest(ATTACH, {"CALL_ID": remote_id, "FILENAME": name})
        if isinstance(offer, dict) and offer.get("uploadUrl"):
            field = str(offer.get("fieldName") or "file")
            await upload(str(offer["uploadUrl"]), field, name, content)
            return
    params = {
        "CALL_ID": remote_id,
        "FILENAME": name,
        "FILE_CONTENT": base64.b64encode(content).decode("ascii"),
    }
    await rest(ATTACH, params, timeout=ATTACH_RECORD_TIMEOUT_S)


def to_mp3(wav: bytes) -> bytes | None:
    """The WAV as mono MP3, or None when ffmpeg is missing or fails (the WAV is sent)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return None
    with tempfile.TemporaryDirectory(prefix="numcfg-rec-") as folder:
        dest = Path(folder) / "record.mp3"
        command = [
            ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
            "-f", "wav", "-i", "pipe:0", "-vn", "-ac", "1",
            "-c:a", "libmp3lame", "-b:a", MP3_BITRATE, "-f", "mp3", "-y", str(dest),
        ]  # fmt: skip
        try:
            subprocess.run(
                command, input=wav, capture_output=True, timeout=MP3_TIMEOUT_S, check=True
            )
            return dest.read_bytes()
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("recording not converted to MP3 (%s); sending the WAV", exc)
            return None
