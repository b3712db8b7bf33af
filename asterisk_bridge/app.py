"""The one place that builds numcfg's objects, and starts and stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import stat
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from .admin import set_workday
from .api.server import build_api
from .ari.client import AriClient
from .ari.errors import AriError
from .ari.events import USED_EVENT_TYPES, Event, StreamResumed
from .ari.inbox import made_by_new_id
from .ari.router import EventRouter
from .ari.stream import EventStream
from .calls.callback import WakeOnCallbackQueued, callback_worker
from .calls.clicktocall import click_to_call
from .calls.core.claims import claims_for
from .calls.core.context import Services
from .calls.core.journal import Journal
from .calls.core.leftovers import adopt_recordings
from .calls.dispatcher import Dispatcher
from .calls.features.crm_journal import CrmJournal
from .calls.virtual_hold import held_worker
from .config import ConfigHolder
from .config.store_source import watch_store_config
from .crm import build_crm
from .holdmusic import moh
from .holdmusic.files import prepare_configured_files
from .install.prompt_check import check_sounds
from .metrics import Metrics
from .retention import purge
from .store import Spool, open_store
from .transcription import TranscriptionWorker, WakeOnRecorded, build_transcriber
from .voicemail_mail import VoicemailMailer

log = logging.getLogger("numcfg")

# SIGTERM lets calls in progress finish; past this they are hung up so a stuck call cannot
# block a deploy forever.
DRAIN_TIMEOUT_SECONDS = 600.0
# Failed CRM lead creations are retried from the store at this pace (the CRM may be down
# for minutes; each retry is one HTTP call per pending lead).
CRM_RETRY_SECONDS = 60.0
# A StasisStart read from the websocket is dispatched at once; one second is ample for
# an in-flight one to claim its channel before reconciliation calls it an orphan.
RECONCILE_GRACE_SECONDS = 1.0
# Calls cancelled at the end of a drain run their (shielded, 5 s) cleanup: wait for it.
CANCELLED_CALLS_SECONDS = 10.0
# Hold music is reloaded in Asterisk once ARI is up; a start without ARI skips it.
HOLD_MUSIC_CONNECT_SECONDS = 30.0
# Asterisk's sounds are checked once ARI is up, then at this pace: a later
# `numcfg install-asterisk` (or a config naming a new greeting) shows in /ready within it.
SOUND_CHECK_SECONDS = 300.0
# With every sound there and the config unchanged, the check is made again this often.
SOUND_RECHECK_SECONDS = 3600.0
# storage.keep_days is in days: an hourly pass keeps nothing more than an hour too long.
RETENTION_SECONDS = 3600.0


class App:
    def __init__(self, config_path: str | Path) -> None:
        self.config_holder = ConfigHolder(config_path)
        config = self.config_holder.current
        self.metrics = Metrics()
        self.client = AriClient(
            base_url=config.asterisk.ari_url,
            username=config.asterisk.username,
            password=config.asterisk.password,
            app=config.asterisk.app,
            latency_observer=self.metrics.observe_ari,
        )
        self.store = open_store(config.store)
        self.router = EventRouter(on_unrouted=self._on_unrouted)
        # One name for everything this process holds in a shared store (claims, jobs, open
        # calls, spool): two numcfg on one host (an active pair, two Asterisks) must never
        # release or requeue each other's at start-up.
        node = config.node or f"{socket.gethostname()}/{config.asterisk.app}"
        journal_node = node
        self.crm = build_crm(
            config,
            store=self.store,
            metrics=self.metrics,
            config_source=lambda: self.config_holder.current,
            node=journal_node,
        )
        # One spool file per node: two nodes sharing a folder never replay each other's.
        spool = Spool(Path(config.storage.spool) / f"{journal_node.replace('/', '_')}.jsonl")
        self.journal = Journal(store=self.store, spool=spool, node=journal_node)
        # Recordings are transcribed after their call, one at a time (SPEC section 10).
        self.transcription = TranscriptionWorker(
            store=self.store,
            config_source=lambda: self.config_holder.current,
            make_transcriber=build_transcriber,
            node=journal_node,
            crm=self.crm,
        )
        # Voicemail emailed to its employee after the call (SPEC section 13).
        self.voicemail_mail = VoicemailMailer(config_source=lambda: self.config_holder.current)
        self.services = Services(
            client=self.client,
            router=self.router,
            config_holder=self.config_holder,
            store=self.store,
            metrics=self.metrics,
            node=node,
            journal_node=journal_node,
            journal=self.journal,
            claims=claims_for(self.store, node),
            crm=self.crm,
            observers=(
                CrmJournal(),
                self.voicemail_mail,
            ),
            set_workday=set_workday,
        )
        # The jobs this node queues start at once; the workers' scans only look for other
        # nodes' (wakeup.py).
        self.journal.on_written(WakeOnRecorded(self.transcription))
        self.journal.on_written(WakeOnCallbackQueued(self.services.runtime))
        self.dispatcher = Dispatcher(self.services)
        self.stream = EventStream(
            client=self.client,
            router=self.router,
            on_connected=self.reconcile,
            on_state=lambda up: self.metrics.ari_connected.set(1 if up else 0),
        )
        # Read at scrape time, so reloads from SIGHUP and from the file watcher both count.
        self.metrics.config_reload_failed.set_function(
            lambda: 1.0 if self.config_holder.last_error else 0.0
        )
        # The sounds numcfg will play that Asterisk lacks; None until Asterisk has said.
        self.missing_sounds: list[str] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._reloads: set[asyncio.Task[bool]] = set()
        # Calls the last run left open, closed at start; their recordings are taken after.
        self._interrupted: list[str] = []
        self._stack: contextlib.AsyncExitStack | None = None
        self._stopped = asyncio.Event()

    def _on_unrouted(self, event: Event) -> None:
        self.dispatcher.on_unrouted(event)

    async def reconcile(self) -> None:
        """After a (re)connection: resync our calls, hang up orphans left in Stasis.

        Every call re-checks what it owns (StreamResumed). A channel listed by ARI but not
        owned may be a new call whose StasisStart is still on its way, so candidates get
        a short grace period; and only channels in *our* Stasis application are orphans:
        the app is also subscribed to the far halves of the Local legs it originates,
        which belong to a conversation in progress.
        """
        try:
            await self.client.set_event_filter(USED_EVENT_TYPES)
        except AriError as exc:  # an older Asterisk: we simply receive everything
            log.info("ARI event filter not set: %s", exc)
        for sink in self.router.sinks():
            sink.deliver(StreamResumed("StreamResumed", {}))
        snapshot = await self.client.app_snapshot()
        channels = [c for c in snapshot.channel_ids if self.router.owner(c) is None]
        bridges = [b for b in snapshot.bridge_ids if self.router.owner(b) is None]
        if not channels and not bridges:
            return
        await asyncio.sleep(RECONCILE_GRACE_SECONDS)
        for channel_id in channels:
            if self.router.owner(channel_id) is not None:
                continue
            # A leg numcfg originated that nobody owns (its call ended in a gap, or the
            # process that rang it was killed) would ring an employee for a caller who is
            # gone until its dial timeout: it is an orphan even before it is answered.
            if made_by_new_id(channel_id) or await self._in_our_stasis(channel_id):
                log.warning("hanging up channel %s left without an owner", channel_id)
                with contextlib.suppress(AriError):
                    await self.client.hangup(channel_id)
        for bridge_id in bridges:
            if self.router.owner(bridge_id) is None:
                with contextlib.suppress(AriError):
                    await self.client.destroy_bridge(bridge_id)

    async def _in_our_stasis(self, channel_id: str) -> bool:
        try:
            channel = await self.client.channel(channel_id)
        except AriError:
            return False
        return channel.app_name == "Stasis" and channel.app_data.split(",")[0] == self.client.app

    async def start(self) -> None:
        """Start every part in order; each registers its own teardown, so `stop` undoes
        them in reverse, and a start that fails half-way (API port taken) undoes what it
        had started before raising."""
        stack = contextlib.AsyncExitStack()
        try:
            await self._start_parts(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack

    async def _start_parts(self, stack: contextlib.AsyncExitStack) -> None:
        config = self.config_holder.current
        self._warn_if_config_is_readable()
        # Torn down last: everything else may still write to the store or call ARI.
        stack.push_async_callback(asyncio.to_thread, self.store.close)
        stack.push_async_callback(self.client.close)
        stack.push_async_callback(self._close_crm)
        await asyncio.to_thread(self.store.people.release_node, self.services.node)
        await asyncio.to_thread(
            self.store.callbacks.requeue_node, self.services.node, now=self.services.clock()
        )
        await self._close_interrupted_calls()
        # Started before the calls' parts and so stopped after them: what the last calls
        # write is flushed (or spooled) at the end.
        self._background(stack, self.journal.run(), "journal", before=self._flush_journal)
        self._background(stack, self.stream.run(), "ari-events", before=self.stream.stop)
        self._background(stack, self._watch_config(), "config-watch")
        self._background(stack, self._watch_store(), "store-config-watch")
        self._background(stack, self._retry_crm(), "crm-retry")
        self._background(stack, callback_worker(self.services), "callback-worker")
        # Kept places of virtual hold (SPEC section 9): called back when their turn comes.
        self._background(stack, held_worker(self.services), "virtual-hold")
        # Stopped before the store and the CRM close: a job in progress is given back.
        self._background(stack, self.transcription.run(), "transcription")
        self._background(stack, self.voicemail_mail.run(), "voicemail-mail")
        self._background(stack, self._prepare_hold_music(), "hold-music")
        self._background(stack, self._watch_sounds(), "sound-check")
        self._background(stack, self._retention(), "retention")
        self._background(stack, self._adopt_interrupted_recordings(), "interrupted-recordings")
        host, _, port = config.api.listen.rpartition(":")
        runner = web.AppRunner(build_api(self), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)  # first to go: no request meets a closed part
        site = web.TCPSite(runner, host or "127.0.0.1", int(port))
        await site.start()
        log.info("numcfg API on http://%s", config.api.listen)

    def _warn_if_config_is_readable(self) -> None:
        """The config names secrets' variables and the store URL: say so when anyone on
        the host may read it."""
        try:
            mode = self.config_holder.path.stat().st_mode
        except OSError:
            return
        if mode & stat.S_IROTH:
            log.warning(
                "%s is world-readable (mode %o): chmod o-r it",
                self.config_holder.path,
                mode & 0o777,
            )

    async def _close_interrupted_calls(self) -> None:
        """Calls this node had up when it was killed get their details now."""
        try:
            closed = await asyncio.to_thread(
                self.store.calls.close_interrupted,
                node=self.services.journal_node,
                now=self.services.clock(),
            )
        except Exception as exc:  # a store fault must not keep numcfg from serving calls
            log.warning("calls left open by the last run not closed: %s", exc)
            return
        if closed:
            log.warning("closed %d call(s) left open by the last run", len(closed))
            self._interrupted = closed

    async def _adopt_interrupted_recordings(self) -> None:
        """What the interrupted calls recorded is taken from Asterisk's spool once
        reconciliation has hung up their channels (calls/core/leftovers.py)."""
        if not self._interrupted or not await self.stream.wait_connected(
            HOLD_MUSIC_CONNECT_SECONDS
        ):
            return
        try:
            await adopt_recordings(
                self.client, self.store, self.config_holder.current, self._interrupted
            )
        except Exception as exc:  # never keeps numcfg from serving calls
            log.warning("recordings of interrupted calls not taken: %s", exc)

    def _background(
        self,
        stack: contextlib.AsyncExitStack,
        coro: Coroutine[Any, Any, None],
        name: str,
        *,
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Run `coro` for the life of the app; at stop, `before` (a clean stop) then cancel."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)

        async def end() -> None:
            if before is not None:
                with contextlib.suppress(Exception):
                    await before()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

        stack.push_async_callback(end)

    async def _flush_journal(self) -> None:
        await self.journal.flush()

    async def _close_crm(self) -> None:
        with contextlib.suppress(Exception):
            await self.crm.close()

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _watch_config(self) -> None:
        try:
            await self.config_holder.watch()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("config watcher stopped; SIGHUP still reloads")

    async def _watch_store(self) -> None:
        """Configs published with `numcfg apply` (PostgreSQL LISTEN/NOTIFY); on SQLite
        this returns at once and the file is the source."""

        def on_text(version: int, text: str) -> None:
            self.config_holder.reload_text(text, f"store:v{version}")

        try:
            # The newest published version is delivered first: a node started from its
            # file joins the shared configuration at once.
            await watch_store_config(self.store, on_text)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("store config watcher stopped")

    async def _retry_crm(self) -> None:
        # The portal's work days (crm.workday: bitrix24) are read now, not at the first
        # call: a call never waits for them, so the first one would otherwise go without.
        self.crm.portal_workdays()
        await self.set_up_portal()
        # Calls the last run registered in the CRM and could not finish there are finished
        # first (their details were closed by _close_interrupted_calls), then every round.
        while True:
            try:
                await self.crm.finish_left_open()
            except Exception:
                log.exception("CRM: finishing calls left open failed")
            await asyncio.sleep(CRM_RETRY_SECONDS)
            try:
                await self.crm.retry_pending()
            except Exception:
                log.exception("CRM retry failed")

    async def set_up_portal(self) -> None:
        """A Bitrix24 local application: numcfg's numbers as the portal's external lines,
        and click-to-call bound to crm.handler_url (once installed; again at each start)."""
        settings = self.config_holder.current.crm
        if settings.backend != "bitrix24" or settings.auth != "app":
            return
        lines = {n.number: n.name or n.number for n in self.config_holder.current.numbers.values()}
        await self.crm.set_up_portal(lines, settings.handler_url)

    def click_to_call(
        self, *, employee_id: str, phone: str, line: str | None, remote_id: str
    ) -> None:
        """Start a click-to-call (the CRM's OnExternalCallStart) beside the calls in
        progress; the drain waits for it like for any call."""
        key = f"click:{remote_id}"
        if key in self.services.active or self.services.draining:
            return

        async def run() -> None:
            try:
                await click_to_call(
                    self.services,
                    employee_id=employee_id,
                    phone=phone,
                    line=line,
                    remote_id=remote_id,
                )
            except Exception:
                log.exception("click-to-call %s failed", remote_id)
            finally:
                self.services.active.pop(key, None)

        self.services.active[key] = asyncio.create_task(run(), name=key)

    async def _prepare_hold_music(self) -> None:
        """Convert configured hold-music files and (re)write the MOH classes Asterisk
        includes, so uploads and `{file:}` music play from the first call."""
        config = self.config_holder.current
        try:
            await asyncio.to_thread(prepare_configured_files, config, self.store)
            await asyncio.to_thread(moh.write_moh_conf, config)
            if await self.stream.wait_connected(HOLD_MUSIC_CONNECT_SECONDS):
                await moh.reload_moh(self.client)
        except Exception as exc:  # hold music must never keep numcfg from serving calls
            log.warning("hold music not prepared: %s", exc)

    async def check_sounds(self) -> list[str] | None:
        """Ask Asterisk which of the sounds numcfg plays it lacks; log them once per
        change. An Asterisk that cannot answer leaves the last answer standing."""
        try:
            missing = await check_sounds(self.client, self.config_holder.current)
        except AriError as exc:
            log.info("sounds not checked: %s", exc)
            return self.missing_sounds
        if missing and missing != self.missing_sounds:
            log.warning(
                "Asterisk lacks %d sound(s) numcfg plays (callers would hear nothing): %s; "
                "run numcfg install-asterisk",
                len(missing),
                ", ".join(missing),
            )
        elif not missing and self.missing_sounds:
            log.info("Asterisk now has every sound numcfg plays")
        self.missing_sounds = missing
        return missing

    async def _watch_sounds(self) -> None:
        # GET /sounds lists every sound Asterisk has (841 on the rig, 107 kB): about 26 ms
        # of Asterisk's CPU and as much of numcfg's. So it is asked again every
        # SOUND_CHECK_SECONDS only while a sound is missing (or unknown) or the config
        # changed; with everything there, hourly (issue 15: one such check in a benchmark
        # round was 1 ms per call).
        checked_config: object | None = None
        checked_at = 0.0
        while True:
            if self.stream.connected or await self.stream.wait_connected(SOUND_CHECK_SECONDS):
                config = self.config_holder.current
                due = (
                    self.missing_sounds != []
                    or config is not checked_config
                    or time.monotonic() - checked_at >= SOUND_RECHECK_SECONDS
                )
                if due:
                    await self.check_sounds()
                    checked_config, checked_at = config, time.monotonic()
            await asyncio.sleep(SOUND_CHECK_SECONDS)

    async def _retention(self) -> None:
        """Purge what storage.keep_days no longer keeps, at start and then hourly."""
        while True:
            config = self.config_holder.current
            if config.storage.keep_days is not None:
                try:
                    report = await asyncio.to_thread(
                        purge, config, self.store, self.services.clock()
                    )
                except Exception as exc:  # a store or disk fault: the next pass retries
                    log.warning("retention pass failed: %s", exc)
                else:
                    if report is not None and report.files:
                        log.info(
                            "retention: %d file(s) older than %s removed",
                            len(report.files),
                            report.cutoff.isoformat(timespec="seconds"),
                        )
            await asyncio.sleep(RETENTION_SECONDS)

    def reload(self) -> bool:
        return self.config_holder.reload()

    def _reload_in_background(self) -> None:
        task = asyncio.get_running_loop().create_task(self.config_holder.reload_async())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def drain(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
        """Let calls in progress finish (new inbound calls go to the backup branch)."""
        self.services.runtime.draining = True
        pending = list(self.services.active.values())
        if pending:
            log.info("waiting for %d call(s) to finish", len(pending))
            _done, still = await asyncio.wait(pending, timeout=timeout)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=CANCELLED_CALLS_SECONDS)

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        # Parsed in a thread (reload_async): a SIGHUP never stalls the calls in progress.
        loop.add_signal_handler(signal.SIGHUP, self._reload_in_background)
        loop.add_signal_handler(signal.SIGTERM, self._stopped.set)
        loop.add_signal_handler(signal.SIGINT, self._stopped.set)
        async with self:
            await self._stopped.wait()
            log.info("stopping: letting calls finish")
            await self.drain()


async def run_app(config_path: str | Path) -> None:
    app = App(config_path)
    await app.serve_forever()
