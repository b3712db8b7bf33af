"""ARI connection faults: a silent network drop (through a loopback proxy, the one fault a
real Asterisk cannot be made to show) with a conversation up, and a second instance taking
the app name. Each ends with issue 17's checks (checks.assert_after_faults)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from tests.integration.harness import Employee, Harness

from .checks import assert_after_faults
from .figures import FIGURES

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


class FreezableProxy:
    """TCP proxy to Asterisk's HTTP port that can stop forwarding without closing, like a
    cable pulled or a NAT entry dropped: no FIN, no RST, just silence."""

    def __init__(self, target_port: int = 8088) -> None:
        self.target_port = target_port
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    await self.flowing.wait()  # frozen: hold the data, forward nothing
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        for task in (
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()


async def test_silent_drop_is_noticed_within_ten_seconds_and_recovered(
    harness: Harness, numcfg, request: pytest.FixtureRequest
) -> None:
    test = request.node.name
    proxy = FreezableProxy()
    await proxy.start()
    try:
        app = await numcfg(
            {
                "asterisk": {"ari_url": f"http://127.0.0.1:{proxy.port}/ari"},
                "queues": {
                    "sales": {
                        "members": ["anna"],
                        "ring_time": 10,
                        "max_wait": 30,
                        "fallback": {"action": "hangup"},
                    }
                },
                "numbers": {"paris": {"routing": {"greeting": None, "queue": "sales"}}},
            }
        )
        assert app.stream.connected
        await asyncio.to_thread(app.store.people.set_workday, "anna", "working")
        harness.employees["101"] = Employee("answer", answer_after=0.2)  # talks on
        leg = await harness.call("+33185000000")
        await harness.bridged(leg, timeout=20)
        deadline = time.monotonic() + 10
        while len((await harness.bridge_of(leg.far_id) or {}).get("channels", [])) < 2:
            assert time.monotonic() < deadline, "the employee never joined the caller"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # talking: no request of numcfg's in flight
        proxy.flowing.clear()
        FIGURES.fault(test)
        frozen_at = time.monotonic()
        while app.stream.connected:
            assert time.monotonic() - frozen_at < 10, "silent drop not noticed within 10 s"
            await asyncio.sleep(0.1)
        proxy.flowing.set()
        deadline = time.monotonic() + 20
        while not app.stream.connected:
            assert time.monotonic() < deadline, "no reconnection after the network came back"
            await asyncio.sleep(0.1)
        # The conversation went on through the drop.
        bridge = await harness.bridge_of(leg.far_id)
        assert bridge is not None and len(bridge["channels"]) == 2, "conversation lost"
        await harness.hangup(leg)
        (call,) = await assert_after_faults(app, harness, test=test, placed=1)
        assert (call["disposition"], call["employee"]) == ("answered", "anna")
    finally:
        await proxy.stop()


async def test_second_instance_replaces_the_first_which_stops_without_fighting(
    harness: Harness, numcfg, request: pytest.FixtureRequest
) -> None:
    test = request.node.name
    first = await numcfg()
    second = await numcfg({"api": {"listen": "127.0.0.1:18091"}})
    FIGURES.fault(test)
    deadline = time.monotonic() + 10
    while not first.stream.replaced:
        assert time.monotonic() < deadline, "first instance never saw ApplicationReplaced"
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)  # a fighting instance would reconnect and replace the second
    assert not first.stream.connected
    assert first.stream.connections == 1
    assert second.stream.connected and second.stream.connections == 1
    leg = await harness.call("+33185000000")
    await harness.heard(leg, "sound:numcfg/en/welcome")
    await harness.ended(leg)
    (call,) = await assert_after_faults(second, harness, test=test, placed=1)
    assert call["route"] == ["greeting", "hangup"]
