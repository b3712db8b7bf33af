"""AriClient helpers for tests against FakeAri (kept out of fixtures.py so test modules
can import them without importing the pytest plugin before pytest rewrites it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import orjson

from asterisk_bridge.ari.client import AriClient

from .server import FakeAri

USERNAME = "numcfg"
PASSWORD = "secret"
APP = "numcfg"


def make_client(fake: FakeAri, **kwargs: object) -> AriClient:
    """An AriClient pointed at `fake`, as numcfg's App builds it from config."""
    return AriClient(
        base_url=fake.base_url,
        username=USERNAME,
        password=PASSWORD,
        app=APP,
        **kwargs,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def websocket_attached(
    client: AriClient, fake: FakeAri, *, attach: bool = True
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """Open the event websocket on the client's session and attach it, with a minimal
    reader that hands RESTResponses to `client.resolve` (what EventStream does), so the
    client's websocket transport is tested without the stream's reconnect machinery.
    On exit the reader stops and the client is detached, as the stream does on close."""
    url = fake.base_url.replace("http", "ws", 1) + f"/events?app={APP}&subscribeAll=false"
    ws = await client.session.ws_connect(url)
    if attach:  # attach=False: open and read only (EventStream attaches after its probe)
        client.attach_websocket(ws)

    async def read() -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                data = orjson.loads(msg.data)
                if data.get("type") == "RESTResponse":
                    client.resolve(data)
        client.detach_websocket()

    reader = asyncio.create_task(read())
    try:
        yield ws
    finally:
        await ws.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        client.detach_websocket()
