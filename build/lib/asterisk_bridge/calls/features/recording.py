"""Conversation recording within the plan's monthly quota (SPEC section 4, steps 3, 9)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...ari.client import RecordOptions
from ...ari.record import Recording, RecordResult, discard_stored, start_recording
from ...policy.quota import MONTHLY_RECORDING_QUOTA, quota_period, recording_decision
from ...policy.types import TranscriptStatus
from ..core.audio import keep_recording

if TYPE_CHECKING:
    from ..core.call import Call

log = logging.getLogger("numcfg.calls")


class Recorder:
    """Decides at answer time whether the call will be recorded (and so warned), and
    records the caller-employee bridge, consuming one unit of quota atomically."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.planned = False
        self._recording: Recording | None = None
        self._period = ""
        self._consumed = False  # one unit of quota per call, however many parts
        self._parts: list[dict[str, Any]] = []

    @property
    def name(self) -> str | None:
        return self._recording.name if self._recording is not None else None

    async def plan(self) -> bool:
        """True when the call will be recorded if answered (record_all and quota left)."""
        call = self.call
        number = call.config.numbers[call.record.number]
        account = call.config.account
        self._period = quota_period(call.services.clock(), account.timezone)
        used = 0
        if number.recording.record_all and MONTHLY_RECORDING_QUOTA.get(account.plan) is not None:
            # Unknown (store down): as if the quota were used up; start() checks again.
            used = await call.services.db_or(10**9, call.services.store.quota.used, self._period)
        decision = recording_decision(
            record_all=number.recording.record_all, plan=account.plan, used=used
        )
        self.planned = decision.record
        call.record.recording_skipped = decision.skipped.value if decision.skipped else None
        return self.planned

    async def start(self, bridge_id: str) -> None:
        call = self.call
        if not self.planned or self._recording is not None:
            return
        limit = MONTHLY_RECORDING_QUOTA.get(call.config.account.plan)
        # The quota is consumed when recording really starts, in one atomic statement,
        # so N+k calls answered together never record more than N.
        # A store that cannot count cannot promise the quota: no recording then.
        if not self._consumed:
            allowed = await call.services.db_or(
                False, call.services.store.quota.try_consume, self._period, limit=limit
            )
            if not allowed:
                call.record.recording_skipped = "quota"
                return
            self._consumed = True
        # A call transferred to a queue talks in a second bridge: its recording is a
        # second part (recording.parts), never written over the first.
        part = len(self._parts) + 1
        suffix = "" if part == 1 else f"-{part}"
        # Subscribed from the start (start_recording): a RecordingFailed during the
        # conversation waits for `stop` instead of being taken by the conversation's wait.
        started = await start_recording(
            call.client,
            call.inbox,
            RecordOptions(name=f"numcfg-rec-{call.record.id}{suffix}"),
            bridge_id=bridge_id,
        )
        if isinstance(started, RecordResult):
            log.warning(
                "call %s: recording did not start (%s: %s)",
                call.record.id,
                started.status.value,
                started.cause,
            )
            return
        self._recording = started
        call.record.recording_skipped = None

    async def stop(self) -> None:
        call = self.call
        recording, self._recording = self._recording, None
        if recording is None:
            return
        result = await recording.stop()
        if not result.has_file:
            log.warning("call %s: recording failed: %s", call.record.id, result.cause)
            await discard_stored(call.client, recording.name)  # whatever part was kept
            return
        suffix = recording.name.removeprefix(f"numcfg-rec-{call.record.id}")
        target = Path(call.config.storage.recordings) / f"{call.record.id}{suffix}.wav"
        seconds = await keep_recording(call.client, recording.name, target)
        if seconds is None:
            return
        self._parts.append({"file": target.name, "seconds": seconds})
        first = self._parts[0]
        call.record.recording = {
            "file": first["file"],
            "seconds": round(sum(p["seconds"] for p in self._parts), 2),
        }
        if len(self._parts) > 1:
            call.record.recording["parts"] = list(self._parts)
        if call.config.numbers[call.record.number].recording.transcribe:
            # Transcribed after the call by the transcription worker: the job is saved
            # with the call's details (SPEC section 10), never awaited here.
            call.record.transcript_status = TranscriptStatus.PENDING.value
