"""The /ari/events websocket: one reader, reconnect with capped backoff, reconciliation.

Asterisk keeps channels in Stasis while we are disconnected and drops the events of that
gap, so after every (re)connection `on_connected` runs to take back or clean up whatever
the app owns (GET /applications/{app}).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import aiohttp
import orjson

from .client import AriClient
from .events import ApplicationReplaced, parse_event
from .router import EventRouter

log = logging.getLogger("numcfg.ari")

# aiohttp pings every HEARTBEAT seconds and closes when the pong is late (half of it), so
# a silently dropped connection is noticed within HEARTBEAT * 1.5 = 7.5 s (< 10 s target).
HEARTBEAT_SECONDS = 5.0
# Reconnect quickly after a blip, but never hammer an Asterisk that is restarting.
BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 10.0
# +-20 % around each backoff step.
BACKOFF_JITTER = 0.2


class EventStream:
    def __init__(
        self,
        *,
        client: AriClient,
        router: EventRouter,
        on_connected: Callable[[], Awaitable[None]],
        on_state: Callable[[bool], None] | None = None,
        rest_over_websocket: bool = True,
    ) -> None:
        self._client = client
        self._router = router
        self._on_connected = on_connected
        self._on_state = on_state
        self._rest_over_websocket = rest_over_websocket
        self.connected = False
        self.replaced = False
        self._stopping = False
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.connections = 0
        self._first_connect = asyncio.Event()
        self._stop_requested = asyncio.Event()

    @property
    def url(self) -> str:
        base = self._client.base_url
        ws_base = "ws" + base[4:] if base.startswith("http") else base
        return f"{ws_base}/events?app={quote(self._client.app)}&subscribeAll=false"

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._first_connect.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        self._stopping = True
        self._stop_requested.set()  # also ends a reconnect wait or a handshake at once
        if self._ws is not None:
            await self._ws.close()

    def _set_connected(self, value: bool) -> None:
        if self.connected != value:
            self.connected = value
            if self._on_state is not None:
                self._on_state(value)

    async def run(self) -> None:
        backoff = BACKOFF_INITIAL_SECONDS
        while not self._stopping and not self.replaced:
            try:
                async with self._client.session.ws_connect(
                    self.url,
                    heartbeat=HEARTBEAT_SECONDS,
                    headers={"Authorization": self._client.auth_header},
                    timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                ) as ws:
                    self._ws = ws
                    if self._stopping:  # stop() came during the handshake
                        break
                    self.connections += 1
                    self._set_connected(True)
                    self._first_connect.set()
                    backoff = BACKOFF_INITIAL_SECONDS
                    log.info("ARI events connected (%s)", self._client.app)
                    # Reconciliation runs beside the reader so events keep flowing.
                    reconcile = asyncio.create_task(self._reconcile(ws))
                    try:
                        await self._read(ws)
                    finally:
                        if not reconcile.done():
                            reconcile.cancel()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("ARI events connection failed: %s", exc or type(exc).__name__)
            finally:
                self._ws = None
                self._client.detach_websocket()
                self._set_connected(False)
            if self._stopping or self.replaced:
                break
            # Jitter: several nodes cut at once do not all reconnect in the same instant.
            delay = backoff * random.uniform(1 - BACKOFF_JITTER, 1 + BACKOFF_JITTER)
            log.info("ARI events reconnecting in %.1fs", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), delay)
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    async def _reconcile(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            if self._rest_over_websocket:
                if await self._client.websocket_rest_works(ws):
                    self._client.attach_websocket(ws)
                else:
                    log.warning("Asterisk does not take REST over the websocket; using HTTP")
            await self._on_connected()
        except Exception:
            log.exception("reconciliation after connect failed")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                try:
                    data = orjson.loads(msg.data)
                except orjson.JSONDecodeError:
                    log.warning("ARI sent a non-JSON message; ignored")
                    continue
                if not isinstance(data, dict):
                    log.warning("ARI sent a JSON message that is not an object; ignored")
                    continue
                if data.get("type") == "RESTResponse":
                    self._client.resolve(data)
                    continue
                try:
                    event = parse_event(data)
                except (TypeError, ValueError, AttributeError):
                    # One malformed event must not take the stream (and every call) down.
                    log.warning("ARI sent a malformed %s event; ignored", data.get("type"))
                    continue
                if isinstance(event, ApplicationReplaced):
                    # Another process took the app name: stop rather than fight over it.
                    log.error("ARI application %s replaced by another connection", self._client.app)
                    self.replaced = True
                    return
                try:
                    self._router.dispatch(event)
                except Exception:
                    log.exception("dispatching %s failed", event.type)
            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                break
        log.warning("ARI events websocket closed")
