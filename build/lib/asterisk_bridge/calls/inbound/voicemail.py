"""Voicemail: a beep, then the caller's voice into storage.voicemail/<call-id>.wav."""

from __future__ import annotations

import logging
from pathlib import Path

from ...ari.client import RecordOptions
from ...ari.record import RecordResult, discard_stored, start_recording
from ..core.audio import keep_recording
from ..core.call import Call

log = logging.getLogger("numcfg.calls")

# A message longer than this is cut: voicemail is for messages, not conversations.
VOICEMAIL_MAX_SECONDS = 300
# Long silence means the caller left without hanging up (or the line is dead).
VOICEMAIL_MAX_SILENCE_SECONDS = 10
# Asterisk ends the recording at VOICEMAIL_MAX_SECONDS itself; past that plus a margin
# an event was lost, and the message is fetched as it is rather than waited on forever.
VOICEMAIL_GUARD_SECONDS = VOICEMAIL_MAX_SECONDS + 30.0


async def leave_voicemail(call: Call, employee_id: str | None) -> None:
    owner = employee_id or call.record.number or "number"
    call.step(f"voicemail:{owner}")
    if not await call.answer():
        return
    await call.play_prompt("voicemail-intro")
    if call.hung_up:
        return
    options = RecordOptions(
        name=f"numcfg-vm-{call.record.id}",
        beep=True,
        terminate_on="#",
        max_duration_seconds=VOICEMAIL_MAX_SECONDS,
        max_silence_seconds=VOICEMAIL_MAX_SILENCE_SECONDS,
    )
    recording = await start_recording(call.client, call.inbox, options, channel_id=call.channel_id)
    if isinstance(recording, RecordResult):
        log.info("call %s: no voicemail (%s)", call.record.id, recording.status.value)
        return
    result = await recording.finished(timeout=VOICEMAIL_GUARD_SECONDS)
    if not result.has_file:
        log.warning("call %s: voicemail recording failed: %s", call.record.id, result.cause)
        await discard_stored(call.client, options.name)  # whatever part of it was kept
        return
    target = Path(call.config.storage.voicemail) / f"{call.record.id}.wav"
    seconds = await keep_recording(call.client, options.name, target)
    if seconds is not None:
        log.info("call %s: voicemail saved to %s (%.1f s)", call.record.id, target, seconds)
