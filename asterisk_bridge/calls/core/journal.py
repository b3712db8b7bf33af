"""The call engine's writes to the store, in order and off the calls' path.

A call notes itself open, then finished; a missed call may add a callback job. All of it
goes through one ordered queue worked by one task, so a slow, locked, full or unreachable
store never delays or fails a call. What the store cannot take is appended to a local
spool file (store/spool.py) and written, still in order, once the store answers again;
meanwhile new writes queue behind the spool, so a call's "finished" can never land before
its "open". `degraded` says why the store is behind, for /ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ...store import CallDetails, Spool, Store

log = logging.getLogger("numcfg.calls")

# While writes are spooled, the store is tried again this often (one write per try).
RETRY_SECONDS = 5.0
# At stop, queued writes get this long; whatever is left goes to the spool.
FLUSH_SECONDS = 5.0
# A finished call waits this long for its details to be written (the caller is gone: no
# one hears it), so they are in the store when the call's task ends; a store slower than
# that gets them in the background.
WAIT_SECONDS = 2.0

OPEN, FINISHED, CALLBACK = "call_open", "call_finished", "callback"
# Writes queued together go to the store in one transaction, up to this many.
BATCH_MAX = 64
# The worker waits this long after a write for others to join its transaction: under
# load (60 calls/s is ~180 notes/s) one transaction and one thread hop then carry several
# calls' notes instead of one each. Nothing waits on a note; a finished call's task waits
# for its save, which this delays by no more than the caller, who is gone, can notice.
BATCH_WINDOW_SECONDS = 0.02


class Journal:
    def __init__(self, *, store: Store, spool: Spool, node: str) -> None:
        self._store = store
        self._spool = spool
        self._node = node
        self._queue: asyncio.Queue[tuple[str, dict[str, Any], asyncio.Future[bool]]] = (
            asyncio.Queue()
        )
        self._idle = asyncio.Event()
        self._idle.set()
        self.degraded: str | None = (
            "spooled writes from an earlier run" if spool.pending() else None
        )
        self._listeners: list[Callable[[str, dict[str, Any]], None]] = []

    def on_written(self, listener: Callable[[str, dict[str, Any]], None]) -> None:
        """Call `listener(kind, payload)` (on the event loop) once each write is in the
        store: the job workers of this process are woken by the jobs it queued (a
        callback, a recording to transcribe) rather than finding them at a later scan."""
        self._listeners.append(listener)

    def _written(self, kind: str, payload: dict[str, Any]) -> None:
        for listener in self._listeners:
            try:
                listener(kind, payload)
            except Exception:  # a listener's bug never stops the writes
                log.exception("journal listener failed")

    # -- what calls do (never blocks) --------------------------------------------------------
    def call_open(self, details: CallDetails) -> None:
        self._put(OPEN, details.to_json())

    async def call_finished(self, details: CallDetails, *, wait: float = WAIT_SECONDS) -> bool:
        """Queue the details; wait up to `wait` for them to be written (True) or spooled
        (False); past that they go on in the background."""
        return await _at_most(self._put(FINISHED, details.to_json()), wait)

    async def add_callback(
        self,
        *,
        number: str,
        phone: str,
        attempts: int,
        delay: float,
        due_at: datetime,
        reason: str,
        call_id: str | None = None,
        wait: float = WAIT_SECONDS,
    ) -> bool:
        """The callback a finished call asks for; the store adds none when the caller
        already has one (CallbackJobs.add_for_call)."""
        return await _at_most(
            self._put(
                CALLBACK,
                {
                    "number": number,
                    "phone": phone,
                    "attempts": attempts,
                    "delay": delay,
                    "due_at": due_at.isoformat(),
                    "reason": reason,
                    "call_id": call_id,
                },
            ),
            wait,
        )

    def _put(self, kind: str, payload: dict[str, Any]) -> asyncio.Future[bool]:
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._idle.clear()
        self._queue.put_nowait((kind, payload, done))
        return done

    # -- the worker -----------------------------------------------------------------------
    async def run(self) -> None:
        """Runs for the life of the app."""
        while True:
            if self._spool_waiting():
                await self._drain_spool()
                if self._spool_waiting():
                    await asyncio.sleep(RETRY_SECONDS)
                    await self._move_queue_to_spool()
                    continue
            # No deadline: only this loop spools (`degraded`), so nothing but a new write
            # can give it work (an idle numcfg does not wake every RETRY_SECONDS).
            first = await self._queue.get()
            if self._queue.empty():
                await asyncio.sleep(BATCH_WINDOW_SECONDS)
            # Whatever queued meanwhile goes in the same thread hop and transaction.
            batch = [first]
            while len(batch) < BATCH_MAX and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            applied: list[int] = [0]
            try:
                await asyncio.to_thread(self._apply_batch, [(k, p) for k, p, _ in batch], applied)
            except Exception as exc:  # the store is the problem, never the call
                self._fault(exc)
                for kind, payload, done in batch[applied[0] :]:
                    await asyncio.to_thread(self._spool.append, kind, payload)
                    _settle(done, False)
            for kind, payload, done in batch[: applied[0]]:
                _settle(done, True)
                self._written(kind, payload)
            self._mark_idle()

    async def flush(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Wait until every queued write is written or spooled; True when done in time."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        done = self._idle.is_set()
        await self._move_queue_to_spool()
        return done

    def _spool_waiting(self) -> bool:
        return self.degraded is not None

    async def _drain_spool(self) -> None:
        entries = await asyncio.to_thread(self._spool.pending)
        written = 0
        for kind, payload in entries:
            try:
                await asyncio.to_thread(self._apply, kind, payload)
            except Exception as exc:
                self._fault(exc)
                break
            written += 1
            self._written(kind, payload)
        remaining = entries[written:]
        await asyncio.to_thread(self._spool.keep_only, remaining)
        if not remaining:
            if self.degraded is not None:
                log.warning("store writable again: %d spooled write(s) done", written)
            self.degraded = None

    async def _move_queue_to_spool(self) -> None:
        """While the store is behind, new writes join the spool in order."""
        while not self._queue.empty():
            kind, payload, done = self._queue.get_nowait()
            await asyncio.to_thread(self._spool.append, kind, payload)
            _settle(done, False)
        self._mark_idle()

    def _mark_idle(self) -> None:
        if self._queue.empty():
            self._idle.set()

    def _fault(self, exc: Exception) -> None:
        if self.degraded is None:
            log.warning("store not writable (%s): spooling to %s", exc, self._spool.path)
        self.degraded = f"store not writable: {type(exc).__name__}"

    def _apply_batch(self, entries: list[tuple[str, dict[str, Any]]], applied: list[int]) -> None:
        """Write `entries` in order: each run of calls' details in one transaction (a call
        noted open and finished in the same run is only saved), a callback on its own.
        `applied[0]` counts the entries written, for the caller to spool the rest."""
        start = 0
        while start < len(entries):
            end = start
            while end < len(entries) and entries[end][0] in (OPEN, FINISHED):
                end += 1
            if end == start:
                self._apply(*entries[start])
                end = start + 1
            else:
                notes = coalesce(entries[start:end])
                self._store.calls.write(
                    [(CallDetails.from_json(payload), kind == FINISHED) for kind, payload in notes],
                    node=self._node,
                )
            applied[0] = start = end

    def _apply(self, kind: str, payload: dict[str, Any]) -> None:
        match kind:
            case "call_open":
                self._store.calls.note_open(CallDetails.from_json(payload), node=self._node)
            case "call_finished":
                self._store.calls.save(CallDetails.from_json(payload))
            case "callback":
                # A spooled write replayed twice, or a caller who already has a callback,
                # adds nothing: one callback per caller at a time.
                self._store.callbacks.add_for_call(
                    number=payload["number"],
                    phone=payload["phone"],
                    attempts=payload["attempts"],
                    delay=payload["delay"],
                    due_at=datetime.fromisoformat(payload["due_at"]),
                    reason=payload["reason"],
                    call_id=payload.get("call_id"),  # spooled by an older release: none
                )


def coalesce(entries: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """A run of calls' details with what the store must see, in order: a call's note
    followed by a later note or save of the same call is left out (both overwrite it,
    and a save closes it). Saves are all kept."""
    seen: set[str] = set()
    kept: list[tuple[str, dict[str, Any]]] = []
    for kind, payload in reversed(entries):
        if kind == FINISHED or payload["id"] not in seen:
            kept.append((kind, payload))
        seen.add(payload["id"])
    kept.reverse()
    return kept


def _settle(done: asyncio.Future[bool], written: bool) -> None:
    if not done.done():
        done.set_result(written)


async def _at_most(done: asyncio.Future[bool], wait: float) -> bool:
    try:
        return await asyncio.wait_for(asyncio.shield(done), wait)
    except TimeoutError:
        return False
