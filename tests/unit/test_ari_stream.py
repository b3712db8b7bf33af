"""EventStream (asterisk_bridge/ari/stream.py) against the fake ARI's event websocket.

The backoff and probe constants are patched small so reconnect behaviour is observed in
tens of milliseconds; the assertions compare gaps between attempts, not absolute times,
except where a bound is the behaviour (a capped backoff, a reset after success).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from asterisk_bridge.ari import client as client_module
from asterisk_bridge.ari import stream as stream_module
from asterisk_bridge.ari.client import AriClient
from asterisk_bridge.ari.errors import AriNotFound
from asterisk_bridge.ari.events import (
    ChannelDtmfReceived,
    Event,
    PlaybackStarted,
    StasisEnd,
    StasisStart,
)
from asterisk_bridge.ari.router import EventRouter
from asterisk_bridge.ari.stream import EventStream
from tests.fakeari import LOGS, FakeAri, Reply, Request, channel_json, event, load_event_log

# fake_ari, ari_client
pytest_plugins = ["tests.fakeari.fixtures"]


@dataclass
class Sink:
    """An event owner as the router sees one; records what it was given, in order."""

    events: list[Event] = field(default_factory=list)
    fail_first: bool = False

    def deliver(self, event: Event) -> None:
        self.events.append(event)
        if self.fail_first and len(self.events) == 1:
            raise RuntimeError("owner bug")


@dataclass
class Harness:
    """A running EventStream plus everything a test observes about it."""

    stream: EventStream
    router: EventRouter
    task: asyncio.Task[None]
    unrouted: list[Event]
    states: list[bool]
    connects: list[int]
    reconciled: asyncio.Event

    async def wait_reconciled(self, count: int = 1, timeout: float = 2.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.connects) < count:
                await self.reconciled.wait()
                self.reconciled.clear()

    async def ended(self, timeout: float = 1.0) -> bool:
        """Whether run() returned (or raised) within `timeout`."""
        done, _ = await asyncio.wait({self.task}, timeout=timeout)
        return bool(done)


StartStream = Callable[..., Awaitable[Harness]]


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconnect within milliseconds; tests that measure backoff patch it again."""
    monkeypatch.setattr(stream_module, "BACKOFF_INITIAL_SECONDS", 0.02)
    monkeypatch.setattr(stream_module, "BACKOFF_MAX_SECONDS", 0.1)
    monkeypatch.setattr(client_module, "WS_REST_PROBE_SECONDS", 0.1)


@pytest.fixture
async def start_stream(ari_client: AriClient) -> AsyncIterator[StartStream]:
    harnesses: list[Harness] = []

    async def start(
        *,
        on_connected: Callable[[AriClient], Awaitable[None]] | None = None,
        rest_over_websocket: bool = True,
        client: AriClient = ari_client,
    ) -> Harness:
        unrouted: list[Event] = []
        states: list[bool] = []
        connects: list[int] = []
        reconciled = asyncio.Event()
        router = EventRouter(on_unrouted=unrouted.append)

        async def connected() -> None:
            connects.append(len(connects) + 1)
            reconciled.set()
            if on_connected is not None:
                await on_connected(client)

        stream = EventStream(
            client=client,
            router=router,
            on_connected=connected,
            on_state=states.append,
            rest_over_websocket=rest_over_websocket,
        )
        task = asyncio.create_task(stream.run())
        harness = Harness(stream, router, task, unrouted, states, connects, reconciled)
        harnesses.append(harness)
        return harness

    yield start
    for harness in harnesses:
        await harness.stream.stop()
        if not await harness.ended(0.2):
            harness.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await harness.task


def dtmf(channel_id: str, digit: str) -> dict[str, Any]:
    return event(
        "ChannelDtmfReceived", digit=digit, duration_ms=120, channel=channel_json(channel_id)
    )


def stasis_start(channel_id: str, *args: str) -> dict[str, Any]:
    return event("StasisStart", args=list(args), channel=channel_json(channel_id))


async def until(predicate: Callable[[], bool], timeout: float = 1.0) -> None:
    """Poll a condition the stream reaches asynchronously (events are routed by its task)."""
    # Polling on purpose: the conditions span objects the test does not own (a sink, the
    # stream's task), and 5 ms is far below any timing the tests assert on.
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


# -- connecting and routing --------------------------------------------------------------
async def test_connects_with_app_and_without_subscribe_all(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    harness = await start_stream()
    conn = await fake_ari.wait_connected()
    assert conn.params == {"app": "numcfg", "subscribeAll": "false"}
    assert await harness.stream.wait_connected(1.0) is True
    assert harness.stream.connected is True


async def test_wait_connected_is_false_when_asterisk_never_answers(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    fake_ari.refuse_connections = True
    harness = await start_stream()
    assert await harness.stream.wait_connected(0.1) is False


async def test_routes_events_to_the_claimed_sink_in_order(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    harness = await start_stream()
    sink = Sink()
    harness.router.claim("c1", sink)
    await harness.wait_reconciled()
    playback = {"id": "p1", "media_uri": "sound:hello", "target_uri": "channel:c1"}
    sent = [
        stasis_start("c1", "inbound", "0100"),
        event("PlaybackStarted", playback={**playback, "state": "playing"}),
        dtmf("c1", "1"),
        dtmf("c1", "2"),
        dtmf("c1", "#"),
        event("StasisEnd", channel=channel_json("c1")),
    ]
    for item in sent:
        assert await fake_ari.send_event(item) == 1
    await until(lambda: len(sink.events) == len(sent))
    kinds = [type(e) for e in sink.events]
    assert kinds == [
        StasisStart,
        PlaybackStarted,
        ChannelDtmfReceived,
        ChannelDtmfReceived,
        ChannelDtmfReceived,
        StasisEnd,
    ]
    assert [e.digit for e in sink.events if isinstance(e, ChannelDtmfReceived)] == list("12#")
    assert harness.unrouted == []


async def test_unrouted_stasis_start_goes_to_on_unrouted(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    harness = await start_stream()
    harness.router.claim("other", Sink())
    await harness.wait_reconciled()
    await fake_ari.send_event(stasis_start("new-call", "inbound", "0100"))
    await until(lambda: len(harness.unrouted) == 1)
    (start,) = harness.unrouted
    assert isinstance(start, StasisStart)
    assert (start.channel.id, start.args) == ("new-call", ["inbound", "0100"])


async def test_a_failing_sink_does_not_stop_the_reader(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    harness = await start_stream()
    sink = Sink(fail_first=True)
    harness.router.claim("c1", sink)
    await harness.wait_reconciled()
    await fake_ari.send_event(dtmf("c1", "1"))
    await fake_ari.send_event(dtmf("c1", "2"))
    await until(lambda: len(sink.events) == 2)
    assert fake_ari.ws_attempts and len(fake_ari.ws_connections) == 1


async def test_non_json_message_is_ignored_and_reading_goes_on(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    harness = await start_stream()
    sink = Sink()
    harness.router.claim("c1", sink)
    await harness.wait_reconciled()
    await fake_ari.send_raw("this is not {json")
    await fake_ari.send_event(dtmf("c1", "5"))
    await until(lambda: len(sink.events) == 1)
    assert harness.stream.connected is True
    assert len(fake_ari.ws_connections) == 1


async def test_json_message_that_is_not_an_object_is_ignored(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    harness = await start_stream()
    sink = Sink()
    harness.router.claim("c1", sink)
    await harness.wait_reconciled()
    await fake_ari.send_raw("[1, 2]")
    await fake_ari.send_event(dtmf("c1", "5"))
    await until(lambda: len(sink.events) == 1 or harness.task.done())
    assert not harness.task.done()
    assert len(sink.events) == 1


async def test_rest_responses_are_not_dispatched_as_events(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    async def take_back(client: AriClient) -> None:
        await client.application()

    harness = await start_stream(on_connected=take_back)
    await fake_ari.wait_request("GET", "/applications/numcfg", transport="ws")
    await fake_ari.send_event(stasis_start("marker", "inbound", "1"))
    await until(lambda: len(harness.unrouted) == 1)
    assert [e.type for e in harness.unrouted] == ["StasisStart"]


async def test_replayed_call_reaches_its_owner_in_order(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    events = load_event_log(LOGS / "inbound_greeting_hangup.jsonl")
    harness = await start_stream()
    sink = Sink()
    harness.router.claim(events[0]["channel"]["id"], sink)
    await harness.wait_reconciled()
    assert await fake_ari.replay(events) == len(events)
    await until(lambda: len(sink.events) == len(events))
    assert [e.type for e in sink.events] == [e["type"] for e in events]
    assert fake_ari.channels == {}  # the model followed the call to ChannelDestroyed


# -- REST over the stream's websocket -----------------------------------------------------
async def test_on_connected_requests_go_over_the_websocket_after_the_probe(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    async def take_back(client: AriClient) -> None:
        await client.application()

    await start_stream(on_connected=take_back)
    await fake_ari.wait_request("GET", "/applications/numcfg")
    assert [(r.path, r.transport) for r in fake_ari.requests] == [
        ("/asterisk/ping", "ws"),
        ("/applications/numcfg", "ws"),
    ]


async def test_stream_falls_back_to_http_when_asterisk_ignores_rest_requests(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    fake_ari.set_ws_rest(False)

    async def take_back(client: AriClient) -> None:
        await client.application()

    await start_stream(on_connected=take_back)
    req = await fake_ari.wait_request("GET", "/applications/numcfg")
    assert req.transport == "http"
    assert fake_ari.requests[0].transport == "ws"  # the probe was tried


async def test_without_rest_over_websocket_nothing_is_sent_on_the_socket(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    async def take_back(client: AriClient) -> None:
        await client.application()

    await start_stream(on_connected=take_back, rest_over_websocket=False)
    req = await fake_ari.wait_request("GET", "/applications/numcfg")
    assert req.transport == "http"
    assert [r.transport for r in fake_ari.requests] == ["http"]


async def test_a_request_pending_when_the_server_cuts_is_sent_again_over_http(
    fake_ari: FakeAri, start_stream: StartStream, ari_client: AriClient
) -> None:
    harness = await start_stream()
    await harness.wait_reconciled()
    transports: list[str] = []
    release = asyncio.Event()

    async def answer(req: Request, _m: dict[str, str]) -> Reply:
        transports.append(req.transport)
        if req.transport == "ws":
            await release.wait()  # its answer is lost with the socket
        return Reply(204)

    fake_ari.respond("POST", "/channels/{id}/answer", handler=answer)
    pending = asyncio.create_task(ari_client.answer("c1"))
    await fake_ari.wait_request("POST", "/channels/c1/answer", transport="ws")
    await fake_ari.cut()
    assert await asyncio.wait_for(pending, 1.0) is None
    release.set()
    assert transports == ["ws", "http"]


async def test_request_during_a_failing_probe_still_succeeds(
    fake_ari: FakeAri, start_stream: StartStream, ari_client: AriClient
) -> None:
    fake_ari.set_ws_rest(False)
    fake_ari.add_channel("c1", state="Ring")
    await start_stream()
    await fake_ari.wait_request("GET", "/asterisk/ping", transport="ws")
    await ari_client.answer("c1")  # a call flow acting on a StasisStart right after connect
    assert fake_ari.channels["c1"]["state"] == "Up"


# -- reconnecting ------------------------------------------------------------------------
async def test_on_connected_runs_after_every_connect(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    harness = await start_stream()
    await harness.wait_reconciled(1)
    await fake_ari.cut()
    await harness.wait_reconciled(2)
    await fake_ari.cut(abort=True)
    await harness.wait_reconciled(3)
    assert harness.connects == [1, 2, 3]
    assert harness.stream.connections == 3


async def test_reconnects_after_a_server_side_cut_and_events_flow_again(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    harness = await start_stream()
    sink = Sink()
    harness.router.claim("c1", sink)
    await harness.wait_reconciled(1)
    await fake_ari.cut()
    await fake_ari.wait_connected(2)
    await harness.wait_reconciled(2)
    assert await fake_ari.send_event(dtmf("c1", "9")) == 1
    await until(lambda: len(sink.events) == 1)


async def test_reconnects_when_asterisk_comes_back_after_refusing_tcp(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    harness = await start_stream()
    await harness.wait_reconciled(1)
    await fake_ari.stop_listening()  # ECONNREFUSED from now on
    await until(lambda: harness.stream.connected is False)
    await asyncio.sleep(0.1)  # a few refused attempts
    await fake_ari.start_listening()
    await harness.wait_reconciled(2)
    assert len(fake_ari.ws_connections) == 2


async def test_on_state_reports_connected_then_lost_then_back(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    harness = await start_stream()
    await harness.wait_reconciled(1)
    await fake_ari.cut()
    await harness.wait_reconciled(2)
    assert harness.states == [True, False, True]
    await harness.stream.stop()
    assert await harness.ended()
    assert harness.states == [True, False, True, False]


async def test_backoff_doubles_between_failed_attempts_up_to_the_cap(
    fake_ari: FakeAri, start_stream: StartStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "BACKOFF_INITIAL_SECONDS", 0.02)
    monkeypatch.setattr(stream_module, "BACKOFF_MAX_SECONDS", 0.12)
    monkeypatch.setattr(stream_module, "BACKOFF_JITTER", 0.0)  # the doubling, exactly
    fake_ari.refuse_connections = True
    harness = await start_stream()
    attempts = await fake_ari.wait_attempts(6, timeout=3.0)
    gaps = [b - a for a, b in itertools.pairwise(attempts)][:5]
    # 0.02, 0.04, 0.08, then capped at 0.12 twice.
    assert gaps[0] < gaps[1] < gaps[2] < gaps[3]
    assert gaps[3] >= 0.12 and gaps[4] >= 0.12
    assert max(gaps) < 0.12 + 0.08
    assert harness.states == []


async def test_backoff_is_jittered_so_nodes_do_not_reconnect_in_lockstep(
    fake_ari: FakeAri, start_stream: StartStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "BACKOFF_INITIAL_SECONDS", 0.05)
    monkeypatch.setattr(stream_module, "BACKOFF_MAX_SECONDS", 0.05)
    fake_ari.refuse_connections = True
    await start_stream()
    attempts = await fake_ari.wait_attempts(7, timeout=3.0)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(attempts)][1:]
    assert all(0.035 <= gap < 0.09 for gap in gaps)  # 0.05 s +-20 %, plus scheduling
    assert len(set(gaps)) > 1


async def test_backoff_starts_over_after_a_successful_connect(
    fake_ari: FakeAri, start_stream: StartStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "BACKOFF_INITIAL_SECONDS", 0.01)
    monkeypatch.setattr(stream_module, "BACKOFF_MAX_SECONDS", 1.0)
    fake_ari.refuse_connections = True
    harness = await start_stream()
    await fake_ari.wait_attempts(6, timeout=3.0)  # backoff has grown to 0.32 s
    fake_ari.refuse_connections = False
    await harness.wait_reconciled(1, timeout=3.0)
    before = len(fake_ari.ws_attempts)
    await fake_ari.cut()
    cut_at = asyncio.get_running_loop().time()
    attempts = await fake_ari.wait_attempts(before + 1)
    assert attempts[before] - cut_at < 0.15


async def test_wrong_credentials_never_connect_and_keep_retrying(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    client = AriClient(base_url=fake_ari.base_url, username="numcfg", password="x", app="numcfg")
    try:
        harness = await start_stream(client=client)
        await fake_ari.wait_attempts(3)
        assert fake_ari.ws_connections == []
        assert harness.states == [] and harness.connects == []
    finally:
        await harness.stream.stop()
        await harness.ended()
        await client.close()


async def test_on_connected_sees_what_ended_during_the_gap(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    """The engine's re-check after a reconnect: a channel hung up while we were away is
    404 now, and GET /applications no longer lists it."""
    fake_ari.add_channel("c1")
    fake_ari.add_channel("c2")
    seen: list[tuple[list[str], str]] = []

    async def recheck(client: AriClient) -> None:
        listed = (await client.application())["channel_ids"]
        try:
            await client.get_channel("c1")
            seen.append((listed, "alive"))
        except AriNotFound:
            seen.append((listed, "gone"))

    harness = await start_stream(on_connected=recheck)
    await until(lambda: len(seen) == 1)
    fake_ari.refuse_connections = True
    await fake_ari.cut()
    await fake_ari.wait_attempts(len(fake_ari.ws_attempts) + 1)
    del fake_ari.channels["c1"]  # hung up in the gap: its events are lost
    del fake_ari.in_stasis["c1"]
    fake_ari.refuse_connections = False
    await until(lambda: len(seen) == 2)
    assert seen == [(["c1", "c2"], "alive"), (["c2"], "gone")]
    assert harness.stream.connections == 2


async def test_a_failing_on_connected_does_not_stop_the_stream(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    async def broken(_client: AriClient) -> None:
        raise RuntimeError("reconcile bug")

    harness = await start_stream(on_connected=broken)
    sink = Sink()
    harness.router.claim("c1", sink)
    await harness.wait_reconciled()
    await fake_ari.send_event(dtmf("c1", "3"))
    await until(lambda: len(sink.events) == 1)
    assert not harness.task.done()


# -- ending ------------------------------------------------------------------------------
async def test_application_replaced_stops_without_reconnecting(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    harness = await start_stream()
    await harness.wait_reconciled()
    assert await fake_ari.send_application_replaced() == 1
    assert await harness.ended()
    assert harness.stream.replaced is True
    await asyncio.sleep(0.1)  # several backoff periods
    assert len(fake_ari.ws_attempts) == 1
    assert harness.states == [True, False]


async def test_stop_ends_run_without_reconnecting(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    harness = await start_stream()
    await harness.wait_reconciled()
    await harness.stream.stop()
    assert await harness.ended()
    await asyncio.sleep(0.1)
    assert len(fake_ari.ws_attempts) == 1
    assert harness.stream.connected is False


async def test_stop_while_waiting_to_reconnect_ends_run_at_once(
    fake_ari: FakeAri, start_stream: StartStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "BACKOFF_INITIAL_SECONDS", 2.0)
    fake_ari.refuse_connections = True
    harness = await start_stream()
    await fake_ari.wait_attempts(1)
    await asyncio.sleep(0.02)
    await harness.stream.stop()
    assert await harness.ended(0.3)


async def test_stop_during_the_handshake_ends_run(
    fake_ari: FakeAri, start_stream: StartStream
) -> None:
    fake_ari.handshake_delay = 0.1
    harness = await start_stream()
    await fake_ari.wait_attempts(1)
    await harness.stream.stop()
    assert await harness.ended(0.3)
