"""The transcription worker: the store's transcription jobs, one at a time, off every call.

A call with `recording.transcribe` saves its details with `transcript_status: pending` and,
in the same transaction, its job (store/calls.py). This worker claims due jobs, counts
their minutes toward `transcription.monthly_minutes`, runs the backend under
`transcription.timeout`, and records the text or the failure (retried `retry_delay`
seconds later, doubling, up to `attempts` tries). A slow, hanging or failing backend only
delays transcripts: calls never wait for this worker, and it never waits for a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from ..calls.core.journal import FINISHED
from ..config.schema import Config, TranscriptionSettings
from ..crm import CrmService
from ..lease import leased
from ..policy.quota import quota_period
from ..policy.types import TranscriptStatus
from ..store import STORE_FAULTS, Store, TranscriptionJob
from ..wakeup import Wakeup, fallback_seconds, seconds_until
from .base import Transcriber, TranscriptionError

log = logging.getLogger("numcfg.transcription")

# A job this process queues (a recorded call saved here: WakeOnRecorded) is started at
# once, a retry at its `due_at`, a job another node left when its lease runs out
# (TranscriptionJobs.next_due). What only another node can add is looked for every
# quarter of `jobs.lease` (wakeup.py), but never less often than this: a transcript
# minutes after the call is the promise. (A fixed 2 s poll was a third of an idle
# numcfg's CPU, issue 15.)
POLL_SECONDS: Final = 60.0
# A store that cannot be read is asked again this much later (said once, not per poll).
STORE_RETRY_SECONDS: Final = 10.0
# Retry delays double from transcription.retry_delay up to this.
MAX_RETRY_DELAY_SECONDS: Final = 3600.0
# A job interrupted by a stop is given back to the store within this.
GIVE_BACK_SECONDS: Final = 5.0

TranscriberFactory = Callable[[TranscriptionSettings], Transcriber]


class TranscriptionWorker:
    def __init__(
        self,
        *,
        store: Store,
        config_source: Callable[[], Config],
        make_transcriber: TranscriberFactory,
        node: str,
        crm: CrmService | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        """`config_source` is read per job, so a reload's settings apply to the next one.
        `poll_seconds`: the longest the worker sleeps knowing of no job (tests shorten it)."""
        self._store = store
        self._config = config_source
        self._make = make_transcriber
        self._node = node
        self._crm = crm
        self._clock = clock
        self._poll = poll_seconds
        self._transcriber: Transcriber | None = None
        self._built_for: tuple[object, ...] | None = None
        self._wake = Wakeup()
        self._store_down = False

    def wake(self) -> None:
        """Look for a due job now (one was queued by this process), not at the next scan."""
        self._wake.set()

    async def run(self) -> None:
        """Runs for the life of the app; cancelled at stop (a job in progress is given
        back to the store, and pocketsphinx stops at the next pause in the speech)."""
        with contextlib.suppress(*STORE_FAULTS):
            await asyncio.to_thread(
                self._store.transcripts.requeue_node, self._node, now=self._clock()
            )
        try:
            while True:
                job, wait = await self._claim()
                if job is None:
                    await self._wake.wait(wait)
                    continue
                await self._work(job)
        finally:
            await self.close()

    async def close(self) -> None:
        transcriber, self._transcriber = self._transcriber, None
        if transcriber is not None:
            with contextlib.suppress(Exception):
                await transcriber.close()

    async def _claim(self) -> tuple[TranscriptionJob | None, float]:
        """A due job, or None and how long to sleep before looking again."""
        lease = self._config().jobs.lease
        now = self._clock()
        try:
            job, next_due = await asyncio.to_thread(self._claim_or_next_due, now, lease)
        except STORE_FAULTS as exc:
            if not self._store_down:
                log.warning("transcription jobs cannot be read (%s): trying again", exc)
            self._store_down = True
            await asyncio.sleep(STORE_RETRY_SECONDS)
            return None, 0.0
        if self._store_down:
            log.warning("transcription jobs readable again")
        self._store_down = False
        fallback = fallback_seconds(lease, at_most=self._poll)
        return job, seconds_until(next_due, now, fallback)

    def _claim_or_next_due(
        self, now: datetime, lease: float
    ) -> tuple[TranscriptionJob | None, datetime | None]:
        """One thread hop: the job claimed, or when the next one becomes due. Read first:
        most looks find nothing due, and a read costs no write transaction."""
        jobs = self._store.transcripts
        next_due = jobs.next_due()
        if next_due is None or next_due > now:
            return None, next_due
        job = jobs.claim_due(now, node=self._node, lease=lease)
        return job, None if job is not None else jobs.next_due()

    async def _work(self, job: TranscriptionJob) -> None:
        lease = self._config().jobs.lease

        def renew() -> bool:
            return self._store.transcripts.renew(
                job.call_id, node=self._node, now=self._clock(), lease=lease
            )

        try:
            # Renewed while the backend works: a node that dies mid-job stops renewing and
            # another node takes the job over once the lease runs out (issue 16).
            async with leased(renew, lease=lease, what=f"transcription of call {job.call_id}"):
                await self._transcribe(job)
        except asyncio.CancelledError:
            await self._give_back(job)
            raise
        except STORE_FAULTS as exc:
            # Its claim goes stale and another try (here or on another node) takes it.
            log.warning("transcription of call %s not recorded: %s", job.call_id, exc)

    async def _transcribe(self, job: TranscriptionJob) -> None:
        config = self._config()
        settings = config.transcription
        jobs = self._store.transcripts
        cap = None if settings.monthly_minutes is None else settings.monthly_minutes * 60.0
        period = quota_period(self._clock(), config.account.timezone)
        if not await asyncio.to_thread(jobs.charge, job.call_id, period=period, cap_seconds=cap):
            log.info(
                "call %s not transcribed: transcription.monthly_minutes (%s) used up in %s",
                job.call_id,
                settings.monthly_minutes,
                period,
            )
            return
        number = config.numbers.get(job.number or "")
        language = settings.language or (number.spoken_language if number else "en")
        # Only files inside the recordings folder, whatever the job says.
        path = Path(config.storage.recordings) / Path(job.file).name
        try:
            async with asyncio.timeout(settings.timeout):
                backend = await self._backend(settings)
                text = await backend.transcribe(path, language=language)
        except TimeoutError:
            await self._failed(job, settings, f"no transcript within {settings.timeout:g} s")
            return
        except TranscriptionError as exc:
            await self._failed(job, settings, str(exc))
            return
        except Exception as exc:  # a backend bug must not stop the worker
            log.exception("transcription of call %s: unexpected error", job.call_id)
            await self._failed(job, settings, repr(exc))
            return
        if not await asyncio.to_thread(
            jobs.finish, job.call_id, text=text, now=self._clock(), node=self._node
        ):
            log.warning("call %s: transcript not kept, another node took the job", job.call_id)
            return
        log.info("call %s transcribed (%d words)", job.call_id, len(text.split()))
        await self._to_crm(job.call_id, text)

    async def _failed(
        self, job: TranscriptionJob, settings: TranscriptionSettings, error: str
    ) -> None:
        delay = min(settings.retry_delay * 2**job.attempts_made, MAX_RETRY_DELAY_SECONDS)
        status = await asyncio.to_thread(
            self._store.transcripts.fail,
            job.call_id,
            error=error,
            attempts=settings.attempts,
            retry_in=delay,
            now=self._clock(),
            node=self._node,
        )
        if status is None:
            log.warning("call %s: failure not counted, another node took the job", job.call_id)
        elif status is TranscriptStatus.FAILED:
            log.warning(
                "call %s: transcription failed after %d tries: %s",
                job.call_id,
                settings.attempts,
                error,
            )
        else:
            log.info("call %s: transcription failed (%s), again in %g s", job.call_id, error, delay)

    async def _backend(self, settings: TranscriptionSettings) -> Transcriber:
        """The backend for the current settings; rebuilt when a reload changed them."""
        key = (settings.backend, settings.url, settings.model, settings.api_key, settings.timeout)
        if self._transcriber is None or key != self._built_for:
            await self.close()
            self._transcriber = self._make(settings)
            self._built_for = key
        return self._transcriber

    async def _to_crm(self, call_id: str, text: str) -> None:
        if self._crm is None or not text:
            return
        details = await asyncio.to_thread(self._store.calls.get, call_id)
        if details is None:
            return
        await self._crm.notify_transcript(details, text)

    async def _give_back(self, job: TranscriptionJob) -> None:
        async def give_back() -> None:
            await asyncio.to_thread(
                self._store.transcripts.give_back, job.call_id, node=self._node, now=self._clock()
            )

        # Shielded: the worker is being cancelled, the job must still go back.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(give_back()), GIVE_BACK_SECONDS)


class WakeOnRecorded:
    """A journal listener (Journal.on_written, registered by app.py): a call's details
    with a recording to transcribe, once in the store with their job, wake the worker, so
    the transcript does not wait for the next scan. (Not a call observer: the details may
    reach the store after the call has ended, when the store is slow.)"""

    def __init__(self, worker: TranscriptionWorker) -> None:
        self._worker = worker

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == FINISHED and payload.get("transcript_status") == TranscriptStatus.PENDING:
            self._worker.wake()
