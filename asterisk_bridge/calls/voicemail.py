"""Voicemail: a beep, then the caller's voice into storage.voicemail/<call-id>.wav."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from ..ari.errors import AriError, AriNotFound
from ..ari.events import RecordingFailed, RecordingFinished
from .call import Call

log = logging.getLogger("numcfg.calls")

# A message longer than this is cut: voicemail is for messages, not conversations.
VOICEMAIL_MAX_SECONDS = 300
# Long silence means the caller left without hanging up (or the line is dead).
VOICEMAIL_MAX_SILENCE_SECONDS = 10
# After the caller hangs up Asterisk closes the file and reports it within moments.
RECORDING_SETTLE_SECONDS = 10.0


async def leave_voicemail(call: Call, employee_id: str | None) -> None:
    owner = employee_id or call.record.number or "number"
    call.step(f"voicemail:{owner}")
    call.record.disposition = "voicemail"
    if not await call.answer():
        return
    await call.play_prompt("voicemail-intro")
    if call.hung_up:
        return
    name = f"numcfg-vm-{call.record.id}"
    call.inbox.claim(f"rec:{name}")
    try:
        try:
            await call.client.record_channel(
                call.channel_id,
                name=name,
                format="wav",
                beep=True,
                terminateOn="#",
                maxDurationSeconds=VOICEMAIL_MAX_SECONDS,
                maxSilenceSeconds=VOICEMAIL_MAX_SILENCE_SECONDS,
                ifExists="overwrite",
            )
        except AriNotFound:
            return  # hung up before the beep
        finished = await _wait_recording(call, name)
        if finished:
            await _store_message(call, name)
    finally:
        call.inbox.release(f"rec:{name}")


async def _wait_recording(call: Call, name: str) -> bool:
    while True:
        timeout = RECORDING_SETTLE_SECONDS if call.hung_up else None
        event = await call.inbox.get(timeout)
        match event:
            case None:
                return True  # caller gone and no event: try to fetch what was kept
            case RecordingFinished(name=n) if n == name:
                return True
            case RecordingFailed(name=n, cause=cause) if n == name:
                log.warning("call %s: voicemail recording failed: %s", call.record.id, cause)
                return False


async def _store_message(call: Call, name: str) -> None:
    try:
        audio = await call.client.recording_file(name)
    except AriError as exc:
        log.warning("call %s: voicemail file unavailable: %s", call.record.id, exc)
        return
    folder = Path(call.config.storage.voicemail)
    target = folder / f"{call.record.id}.wav"
    await call.services.db(_write, target, audio)
    with contextlib.suppress(AriError):
        await call.client.delete_stored_recording(name)
    log.info("call %s: voicemail saved to %s (%d bytes)", call.record.id, target, len(audio))


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(target)
