"""Conversation recording within the plan's monthly quota (SPEC section 4, steps 3, 9)."""

from __future__ import annotations

import contextlib
import logging
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING

from ..ari.errors import AriError, AriNotFound
from ..ari.events import RecordingFailed, RecordingFinished
from ..policy.quota import MONTHLY_RECORDING_QUOTA, quota_period, recording_decision

if TYPE_CHECKING:
    from .call import Call

log = logging.getLogger("numcfg.calls")

# Asterisk closes the file and reports RecordingFinished within moments of the stop.
RECORDING_STOP_SECONDS = 10.0


class Recorder:
    """Decides at answer time whether the call will be recorded (and so warned), and
    records the caller-employee bridge, consuming one unit of quota atomically."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.planned = False
        self.name: str | None = None
        self.started_at = 0.0
        self._period = ""

    async def plan(self) -> bool:
        """True when the call will be recorded if answered (record_all and quota left)."""
        call = self.call
        number = call.config.numbers[call.record.number]
        account = call.config.account
        self._period = quota_period(call.services.clock(), account.timezone)
        used = 0
        if number.recording.record_all and MONTHLY_RECORDING_QUOTA.get(account.plan) is not None:
            used = await call.services.db(call.services.store.recordings_used, self._period)
        decision = recording_decision(
            record_all=number.recording.record_all, plan=account.plan, used=used
        )
        self.planned = decision.record
        call.record.recording_skipped = decision.skipped.value if decision.skipped else None
        return self.planned

    async def start(self, bridge_id: str) -> None:
        call = self.call
        if not self.planned or self.name is not None:
            return
        limit = MONTHLY_RECORDING_QUOTA.get(call.config.account.plan)
        # The quota is consumed when recording really starts, in one atomic statement,
        # so N+k calls answered together never record more than N.
        allowed = await call.services.db(
            call.services.store.try_consume_recording, self._period, limit
        )
        if not allowed:
            call.record.recording_skipped = "quota"
            return
        name = f"numcfg-rec-{call.record.id}"
        call.inbox.claim(f"rec:{name}")
        try:
            await call.client.record_bridge(
                bridge_id, name=name, format="wav", ifExists="overwrite", beep=False
            )
        except AriError as exc:
            log.warning("call %s: recording did not start: %s", call.record.id, exc)
            call.inbox.release(f"rec:{name}")
            return
        self.name = name
        self.started_at = time.monotonic()
        call.record.recording_skipped = None

    async def stop(self) -> None:
        call = self.call
        name = self.name
        if name is None:
            return
        try:
            with contextlib.suppress(AriNotFound):
                await call.client.stop_recording(name)
            deadline = time.monotonic() + RECORDING_STOP_SECONDS
            while (remaining := deadline - time.monotonic()) > 0:
                event = await call.inbox.get(remaining)
                match event:
                    case RecordingFinished(name=n) if n == name:
                        break
                    case RecordingFailed(name=n) if n == name:
                        log.warning("call %s: recording failed", call.record.id)
                        return
                    case None:
                        break
            try:
                audio = await call.client.recording_file(name)
            except AriError as exc:
                log.warning("call %s: recording file unavailable: %s", call.record.id, exc)
                return
            target = Path(call.config.storage.recordings) / f"{call.record.id}.wav"
            seconds = await call.services.db(_write_wav, target, audio)
            with contextlib.suppress(AriError):
                await call.client.delete_stored_recording(name)
            call.record.recording = {"file": target.name, "seconds": seconds}
        finally:
            call.inbox.release(f"rec:{name}")
            self.name = None


def _write_wav(target: Path, data: bytes) -> float:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(target)
    with wave.open(str(target)) as wav:
        return round(wav.getnframes() / float(wav.getframerate()), 2)
