"""The one place that builds numcfg's objects, and starts and stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from pathlib import Path

from aiohttp import web

from .api.server import build_api
from .ari.client import AriClient
from .ari.errors import AriError
from .ari.events import USED_EVENT_TYPES, StreamResumed
from .ari.router import EventRouter
from .ari.stream import EventStream
from .calls.callback import callback_worker
from .calls.claims import claims_for
from .calls.context import Services
from .calls.dispatcher import Dispatcher
from .config import ConfigHolder
from .config.store_source import watch_store_config
from .crm import build_crm
from .metrics import Metrics
from .store import open_store

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
        self.router = EventRouter(on_unrouted=lambda event: self.dispatcher.on_unrouted(event))
        self.services = Services(
            client=self.client,
            router=self.router,
            config_holder=self.config_holder,
            store=self.store,
            metrics=self.metrics,
            node=socket.gethostname(),
            claims=claims_for(self.store, socket.gethostname()),
        )
        self.crm = build_crm(
            config,
            store=self.store,
            metrics=self.metrics,
            config_source=lambda: self.config_holder.current,
        )
        self.services.crm = self.crm
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
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self._stopped = asyncio.Event()

    async def reconcile(self) -> None:
        """After a (re)connection: resync our calls, hang up orphans left in Stasis.

        A channel listed by ARI but not owned yet may simply be a new call whose
        StasisStart is still on its way over the websocket, so candidates get a short
        grace period and only those still unowned afterwards are hung up.
        """
        try:
            await self.client.set_event_filter(USED_EVENT_TYPES)
        except AriError as exc:  # an older Asterisk: we simply receive everything
            log.info("ARI event filter not set: %s", exc)
        for sink in self.router.sinks():
            sink.deliver(StreamResumed("StreamResumed", {}))
        info = await self.client.application()
        channels = [c for c in info.get("channel_ids", []) if self.router.owner(c) is None]
        bridges = [b for b in info.get("bridge_ids", []) if self.router.owner(b) is None]
        if not channels and not bridges:
            return
        await asyncio.sleep(RECONCILE_GRACE_SECONDS)
        for channel_id in channels:
            if self.router.owner(channel_id) is None:
                log.warning("hanging up channel %s left in Stasis without an owner", channel_id)
                with contextlib.suppress(AriError):
                    await self.client.hangup(channel_id)
        for bridge_id in bridges:
            if self.router.owner(bridge_id) is None:
                with contextlib.suppress(AriError):
                    await self.client.destroy_bridge(bridge_id)

    async def start(self) -> None:
        config = self.config_holder.current
        await asyncio.to_thread(self.store.release_node_claims, self.services.node)
        self._tasks.append(asyncio.create_task(self.stream.run(), name="ari-events"))
        self._tasks.append(asyncio.create_task(self._watch_config(), name="config-watch"))
        self._tasks.append(asyncio.create_task(self._watch_store(), name="store-config-watch"))
        self._tasks.append(asyncio.create_task(self._retry_crm(), name="crm-retry"))
        self._tasks.append(
            asyncio.create_task(callback_worker(self.services), name="callback-worker")
        )
        self._tasks.append(asyncio.create_task(self._prepare_hold_music(), name="hold-music"))
        host, _, port = config.api.listen.rpartition(":")
        self._runner = web.AppRunner(build_api(self), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host or "127.0.0.1", int(port))
        await site.start()
        log.info("numcfg API on http://%s", config.api.listen)

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
        while True:
            await asyncio.sleep(CRM_RETRY_SECONDS)
            try:
                await self.crm.retry_pending()
            except Exception:
                log.exception("CRM retry failed")

    async def _prepare_hold_music(self) -> None:
        """Convert configured hold-music files and (re)write the MOH classes Asterisk
        includes, so uploads and `{file:}` music play from the first call."""
        from .holdmusic import moh

        config = self.config_holder.current
        try:
            from .holdmusic.files import prepare_configured_files

            await asyncio.to_thread(prepare_configured_files, config, self.store)
            await asyncio.to_thread(moh.write_moh_conf, config)
            if await self.stream.wait_connected(30):
                await moh.reload_moh(self.client)
        except Exception as exc:  # hold music must never keep numcfg from serving calls
            log.warning("hold music not prepared: %s", exc)

    def reload(self) -> bool:
        return self.config_holder.reload()

    async def drain(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
        """Let calls in progress finish (new inbound calls go to the backup branch)."""
        self.services.draining = True
        pending = list(self.services.active.values())
        if pending:
            log.info("waiting for %d call(s) to finish", len(pending))
            _done, still = await asyncio.wait(pending, timeout=timeout)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=10)

    async def stop(self) -> None:
        await self.stream.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
        with contextlib.suppress(Exception):
            await self.crm.close()
        await self.client.close()
        await asyncio.to_thread(self.store.close)

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        loop.add_signal_handler(signal.SIGTERM, self._stopped.set)
        loop.add_signal_handler(signal.SIGINT, self._stopped.set)
        await self.start()
        try:
            await self._stopped.wait()
            log.info("stopping: letting calls finish")
            await self.drain()
        finally:
            await self.stop()


async def run_app(config_path: str | Path) -> None:
    app = App(config_path)
    await app.serve_forever()
