"""One call: its inbox, its resources, its record, and its guaranteed cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from ...ari.errors import AriError, AriNotFound
from ...ari.inbox import Inbox, Kind, new_id
from ...ari.media import PlayResult, Status, play
from ...holdmusic.moh import moh_class_for
from ...policy.types import Disposition
from ..features.recording import Recorder
from .context import Services
from .details import CallRecord, now

log = logging.getLogger("numcfg.calls")

# Cleanup must finish even when the call's task is cancelled (shutdown), but must not hang
# forever on an Asterisk that stopped answering: long enough for a recording to be closed
# (up to 10 s) and fetched.
CLEANUP_TIMEOUT_SECONDS = 15.0
# What the details wait for (the CRM's lead) is bounded by crm.timeout already; this is
# only a ceiling so a stuck one can never hold the cleanup up.
DETAILS_WORK_SECONDS = 3.0


class Call:
    def __init__(
        self, *, services: Services, channel_id: str, record: CallRecord, config: Any
    ) -> None:
        self.services = services
        self.client = services.client
        self.config = config
        self.record = record
        self.inbox = Inbox(services.router, services.client, channel_id)
        self.channel_id = channel_id
        self.lang = "en"
        self.answered = False
        self._bridges: set[str] = set()
        self._channels: set[str] = set()  # legs we created (employees, forwards)
        self.warned = False  # the recording warning plays once per call, ever
        self.callee_hung_up_first = False
        self.persist = True  # False: no call-details record (feature codes)
        self.crm_info: Any = None  # CallInfo once the CRM was told about the call
        self.crm_lead: Any = None  # the task finding or planning the call's lead
        self.recorder = Recorder(self)
        # A blind transfer to a queue: the queue the flow runs next (features/transfer).
        self.transfer_queue: str | None = None
        self.transfer_entry: dict[str, Any] | None = None  # its transfers[] entry
        # An IVR option the caller typed during the greeting (SPEC section 9).
        self.typed_ahead: str | None = None
        # The menu whose prompt the greeting's playback carried to its end (flow.py): its
        # first ask waits for digits without playing the prompt again.
        self.menu_prompt_played: str | None = None
        self._before_details: list[asyncio.Task[None]] = []

    @property
    def hung_up(self) -> bool:
        return self.inbox.hung_up

    def step(self, name: str) -> None:
        self.record.step(name)
        # One line per call state change (issue 17); the call id is also a field (logs.py).
        log.info("call %s: %s", self.record.id, name)

    async def answer(self) -> bool:
        if self.answered:
            return True
        try:
            await self.client.answer(self.channel_id)
        except AriNotFound:
            self.inbox.mark_gone()
            return False
        self.answered = True
        return True

    async def play(
        self, media: str, *, interrupt_on_digit: bool = False, start_attempts: int = 1
    ) -> PlayResult:
        return await play(
            self.client,
            self.inbox,
            media,
            lang=self.lang,
            interrupt_on_digit=interrupt_on_digit,
            start_attempts=start_attempts,
        )

    def prompt(self, name: str) -> str:
        """A numcfg prompt in the call's language (rendered by sounds/render)."""
        return f"sound:numcfg/{self.lang}/{name}"

    async def play_prompt(self, name: str, **kwargs: Any) -> PlayResult:
        return await self.play(self.prompt(name), **kwargs)

    async def moh_class(self) -> str:
        """The hold music this caller hears: the number's upload when it has one, else
        its language's class."""
        number_id = self.record.number or ""
        if number_id not in self.config.numbers:
            return f"numcfg-{self.lang}"
        uploaded = await self.services.db_or(
            None, self.services.store.hold_music.upload_path, number_id
        )
        return moh_class_for(self.config, number_id, uploaded is not None)

    def new_bridge_id(self) -> str:
        bridge_id = new_id("br")
        self.inbox.claim(bridge_id, Kind.BRIDGE)
        self._bridges.add(bridge_id)
        return bridge_id

    def new_channel_id(self) -> str:
        channel_id = new_id("leg")
        self.inbox.claim(channel_id, Kind.CHANNEL)
        self._channels.add(channel_id)
        return channel_id

    def forget_channel(self, channel_id: str) -> None:
        self._channels.discard(channel_id)
        self.inbox.release(channel_id)

    def forget_bridge(self, bridge_id: str) -> None:
        self._bridges.discard(bridge_id)
        self.inbox.release(bridge_id)

    def before_details(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` beside the call; the call's details are final only once it ended
        (the CRM's lead, found while the caller is routed)."""
        self._before_details.append(asyncio.get_running_loop().create_task(work))

    async def details_ready(self) -> None:
        """Wait for the work the details depend on (each part bounds its own time)."""
        pending = [task for task in self._before_details if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=DETAILS_WORK_SECONDS)

    async def note_progress(self) -> None:
        """Keep the store's copy of this call in progress current, so a numcfg killed
        now still leaves its details (closed as interrupted at the next start). Queued
        to the journal: a slow or broken store never delays the call."""
        if self.persist:
            self.services.journal.call_open(self.record.details())

    async def on_bridged(self, bridge_id: str) -> None:
        """The caller now talks to someone in `bridge_id`: recording starts here."""
        await self.recorder.start(bridge_id)

    async def on_unbridged(self, bridge_id: str) -> None:
        """The conversation in `bridge_id` ended: the recording is closed and kept."""
        await self.recorder.stop()

    async def hangup(self, reason: str = "normal") -> None:
        if self.inbox.hung_up:
            return
        with contextlib.suppress(AriNotFound):
            await self.client.hangup(self.channel_id, reason)
        self.inbox.mark_gone()

    async def cleanup(self) -> None:
        """Leave nothing behind in Asterisk, then save the record. Runs in `finally`.
        The record is saved even when Asterisk did not answer in time (or the task was
        cancelled): a call is never without its details."""
        try:
            await asyncio.shield(asyncio.wait_for(self._leave_asterisk(), CLEANUP_TIMEOUT_SECONDS))
        except (TimeoutError, asyncio.CancelledError):
            log.warning("call %s: cleanup in Asterisk did not finish in time", self.record.id)
        try:
            await asyncio.shield(self._save())
        except asyncio.CancelledError:  # the shielded save goes on
            log.warning("call %s: cancelled while its details were being saved", self.record.id)
        finally:
            self.inbox.release_all()

    async def _leave_asterisk(self) -> None:
        if self.recorder.name is not None:
            await self.recorder.stop()
        for leg in list(self._channels):
            with contextlib.suppress(AriError):
                await self.client.hangup(leg)
        if not self.inbox.hung_up:
            with contextlib.suppress(AriError):
                await self.client.hangup(self.channel_id)
            self.inbox.mark_gone()
        for bridge in list(self._bridges):
            with contextlib.suppress(AriError):
                await self.client.destroy_bridge(bridge)

    async def _save(self) -> None:
        await self.details_ready()
        self.record.ended_at = now()
        disposition = self.record.disposition or Disposition.FAILED
        self.services.metrics.call_finished(disposition)
        log.info("call %s: ended, %s", self.record.id, disposition.value)
        if not self.persist:
            return
        details = self.record.details()
        await self.services.journal.call_finished(details)
        for observer in self.services.observers:
            await observer.finished(self, details)


__all__ = ["Call", "Status"]
