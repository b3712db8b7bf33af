"""The real numcfg App (call engine, inbox, stream) run against FakeAri, with a small
script API with which a test plays Asterisk's part in a call.

Why: the integration tests need the shared real Asterisk and take seconds per call; the
hard endings (a websocket gap, a lost hangup, a failed recording, a drain) are about the
engine's bookkeeping, which this exercises in milliseconds with the same App object
production builds. Nothing here knows the engine's internals beyond what an operator can
see: REST requests, saved call records, `services.active`, the metrics and the claims.

    engine = await start_engine({...config override...})   # engine_fixtures.py
    caller = await engine.incoming("paris")                 # StasisStart inbound,paris
    leg = await engine.next_leg()                           # the POST /channels it rang
    await engine.answer_leg(leg)                            # StasisStart leg: answered
    await engine.hangup(leg)                                # HangupRequest/End/Destroyed
    (call,) = await engine.calls_done()
    await engine.assert_idle()

Playbacks: every POST .../play is answered by a scripted behaviour per media URI
("finish": PlaybackStarted then PlaybackFinished shortly after; "hold": started, until a
DELETE /playbacks stops it; "never_start": accepted but no event at all, as Asterisk does
with a request that lands while the channel leaves a bridge). Ringback ("tone:ring")
holds by default, everything else finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from asterisk_bridge.app import App

from . import model
from .clients import APP, PASSWORD, USERNAME
from .server import FakeAri, Reply, Request

T = TypeVar("T")

StartEngine = Callable[..., Awaitable["Engine"]]

PlayBehaviour = Literal["finish", "hold", "never_start"]

# How long a "finish" playback plays: long enough that a digit can interrupt it when the
# test presses at once, short enough that a prompt never shows in a test's run time.
PLAY_SECONDS = 0.03
# Every wait in the script API is bounded: a broken engine fails a test, never hangs it.
WAIT_SECONDS = 3.0

# A realistic config (as tests/integration/conftest.py's BASE_CONFIG), pointed at the
# fake by `engine_config`; tests deep-merge their overrides into it.
BASE_CONFIG: dict[str, Any] = {
    "version": 1,
    "asterisk": {
        "username": USERNAME,
        "password": PASSWORD,
        "app": APP,
        "trunk": "PJSIP/{number}@provider",
    },
    "account": {"timezone": "Europe/Paris", "external_allowlist": ["+33*"], "plan": "professional"},
    "employees": {
        "anna": {
            "name": "Anna Martin",
            "extension": "101",
            "endpoint": "PJSIP/101",
            "mobile": "+33612340101",
        },
        "boris": {
            "name": "Boris Leroy",
            "extension": "102",
            "endpoint": "PJSIP/102",
            "mobile": "+33612340102",
        },
    },
    "queues": {"sales": {"members": ["anna"], "distribution": "in_order", "ring_time": 5}},
    "numbers": {
        "paris": {
            "number": "+33185000000",
            "name": "Paris main line",
            "routing": {"queue": "sales"},
            "backup_number": "+33600000001",
        },
    },
}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` into a copy of `base`, dicts merged key by key (a test states only
    what differs from the realistic config)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def free_port() -> int:
    """A loopback port nobody listens on now: the config's api.listen needs a real one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def engine_config(
    fake: FakeAri, tmp_path: Path, override: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The config dict an App under test loads: BASE_CONFIG + `override`, with the ARI
    URL, store, API port and storage folders of this test."""
    data = deep_merge(BASE_CONFIG, override or {})
    data["asterisk"]["ari_url"] = fake.base_url
    data.setdefault("store", f"sqlite:///{tmp_path}/numcfg.sqlite3")
    data.setdefault("api", {"listen": f"127.0.0.1:{free_port()}", "token": "test-token"})
    data.setdefault(
        "storage",
        {
            "recordings": str(tmp_path / "recordings"),
            "voicemail": str(tmp_path / "voicemail"),
            "hold_music": str(tmp_path / "hold-music"),
        },
    )
    return data


@dataclass
class Engine:
    """A started App and the fake it talks to, plus the test's script of Asterisk."""

    fake: FakeAri
    app: App
    config_path: Path
    # media URI -> behaviours for its next plays, consumed in order; then `default_play`.
    play_plans: dict[str, list[PlayBehaviour]] = field(default_factory=dict)
    default_play: dict[str, PlayBehaviour] = field(default_factory=lambda: {"tone:ring": "hold"})
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _legs_seen: int = 0

    # -- setup ------------------------------------------------------------------------------
    def install(self) -> None:
        """Take over the fake's play routes (the model's default only starts them)."""
        self.fake.emit_model_events = True
        for path in ("/channels/{id}/play/{pid}", "/channels/{id}/play"):
            self.fake.respond("POST", path, handler=self._play)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def working(self, *employees: str) -> None:
        """Start these employees' workday (queues skip absent members by default)."""
        for employee in employees:
            self.app.store.people.set_workday(employee, "working")

    def plan_playback(self, media: str, *behaviours: PlayBehaviour) -> None:
        """How the next plays of `media` behave, in order (then the default)."""
        self.play_plans.setdefault(media, []).extend(behaviours)

    # -- Asterisk's side of a call ----------------------------------------------------------
    async def incoming(
        self,
        number: str = "paris",
        *,
        caller: str = "+33612345678",
        channel_id: str | None = None,
    ) -> str:
        """A client calls `number`: its channel enters Stasis(numcfg,inbound,<number>)."""
        cid = channel_id or model.unique_id()
        config = self.app.config_holder.current
        exten = config.numbers[number].number if number in config.numbers else number
        channel = model.channel_json(cid, state="Ring", caller_number=caller, exten=exten)
        channel["dialplan"]["app_data"] = f"{APP},inbound,{number}"
        sent = await self.fake.send_event(
            {"type": "StasisStart", "args": ["inbound", number], "channel": channel}
        )
        assert sent, "no numcfg websocket got the StasisStart"
        return cid

    async def next_leg(self, timeout: float = WAIT_SECONDS) -> str:
        """The channel id of the next originate (POST /channels) the engine sent."""
        return (await self.next_originate(timeout)).params["channelId"]

    async def next_originate(self, timeout: float = WAIT_SECONDS) -> Request:
        """The next POST /channels not returned yet (each is returned once, in order),
        once the fake has answered it (the leg exists and may enter Stasis)."""
        wanted = self._legs_seen + 1

        def found() -> Request | None:
            legs = self.requests("POST", r"/channels", answered=True)
            return legs[wanted - 1] if len(legs) >= wanted else None

        request = await self.wait_for(found, timeout, f"originate #{wanted}")
        self._legs_seen = wanted
        return request

    async def answer_leg(self, leg_id: str) -> None:
        """The rung phone answers: an originated leg enters Stasis(numcfg,leg) only then."""
        await self.enter_stasis(leg_id, ("leg",), state="Up")

    async def enter_stasis(self, channel_id: str, args: tuple[str, ...], *, state: str) -> None:
        """A channel the engine created enters Stasis(numcfg,<args>) (a /channels/create
        one does so before it rings, in state Down)."""
        channel = dict(self.fake.channels.get(channel_id) or model.channel_json(channel_id))
        channel["state"] = state
        channel["dialplan"] = {**channel["dialplan"], "app_data": ",".join((APP, *args))}
        sent = await self.fake.send_event(
            {"type": "StasisStart", "args": list(args), "channel": channel}
        )
        assert sent, f"no numcfg websocket got the StasisStart of {channel_id}"

    async def hangup(self, channel_id: str, cause: int = 16) -> None:
        """The far end hangs up (ChannelHangupRequest, StasisEnd, ChannelDestroyed)."""
        await self.fake.hangup_channel(channel_id, cause)

    async def press(self, channel_id: str, digits: str) -> None:
        """The caller presses keys (one ChannelDtmfReceived per digit)."""
        for digit in digits:
            channel = dict(self.fake.channels.get(channel_id) or model.channel_json(channel_id))
            await self.fake.send_event(
                {
                    "type": "ChannelDtmfReceived",
                    "digit": digit,
                    "duration_ms": 100,
                    "channel": channel,
                }
            )

    def vanish(self, channel_id: str) -> None:
        """The channel is gone from Asterisk and no event says so (a hangup during a
        websocket gap): GETs answer 404, GET /applications no longer lists it."""
        self.fake.channels.pop(channel_id, None)
        self.fake.in_stasis.pop(channel_id, None)
        self.fake.variables.pop(channel_id, None)

    async def cut(
        self, during_gap: Callable[[], None] | None = None, timeout: float = WAIT_SECONDS
    ) -> int:
        """Drop the event websocket, run `during_gap` (synchronously, so it happens before
        the stream can reconnect), and wait for the reconnection and the reconciliation's
        GET /applications. Returns the request index at the cut, for `requests(since=)`."""
        connections = len(self.fake.ws_connections)
        since = len(self.fake.requests)
        assert await self.fake.cut(), "no event websocket to cut"
        if during_gap is not None:
            during_gap()
        await self.fake.wait_connected(connections + 1, timeout)
        await self.wait_request("GET", rf"/applications/{APP}", since=since, timeout=timeout)
        return since

    # -- observing ----------------------------------------------------------------------------
    def requests(
        self, method: str, path_regex: str, *, since: int = 0, answered: bool = False
    ) -> list[Request]:
        """Every request from index `since` whose method matches and path full-matches
        (with `answered`, only those the fake has answered)."""
        regex = re.compile(path_regex)
        return [
            r
            for r in self.fake.requests[since:]
            if r.method == method.upper()
            and regex.fullmatch(r.path)
            and (r.status is not None or not answered)
        ]

    async def wait_request(
        self, method: str, path_regex: str, *, since: int = 0, timeout: float = WAIT_SECONDS
    ) -> Request:
        """The first matching request from `since` on, once answered. Unlike
        FakeAri.wait_request (which returns it on arrival), what the request creates is
        in the model by then: an event sent next cannot overtake it, e.g. a StasisStart
        for a leg whose originate the fake has not yet handled (it would answer 409)."""
        found = await self.wait_for(
            lambda: next(iter(self.requests(method, path_regex, since=since, answered=True)), None),
            timeout,
            f"{method} {path_regex} answered",
        )
        return found

    def played(self, channel_id: str, *, since: int = 0) -> list[str]:
        """The media asked for on `channel_id`, in order."""
        plays = self.requests(
            "POST", rf"/channels/{re.escape(channel_id)}/play(/[^/]+)?", since=since
        )
        # One playback of several media ("a,b") lists each of them.
        return [item for r in plays for item in r.params.get("media", "").split(",")]

    async def wait_for(
        self, probe: Callable[[], T | None], timeout: float = WAIT_SECONDS, what: str = "it"
    ) -> T:
        """Poll `probe` until it returns something other than None or False (polling, not
        events: a probe may look at the fake, the store or the App alike)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    result = probe()
                    if result is not None and result is not False:
                        return result
                    await asyncio.sleep(0.01)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None

    async def wait_bridged(self, *channel_ids: str, timeout: float = WAIT_SECONDS) -> str:
        """The id of the bridge holding all `channel_ids` (the conversation has begun)."""

        def found() -> str | None:
            for bid, bridge in self.fake.bridges.items():
                if all(c in bridge["channels"] for c in channel_ids):
                    return bid
            return None

        return await self.wait_for(found, timeout, f"a bridge with {channel_ids}")

    async def calls_done(self, timeout: float = WAIT_SECONDS) -> list[dict[str, Any]]:
        """Wait until every call task ended (records saved); the saved calls, oldest first."""
        await self.wait_for(lambda: not self.app.services.active, timeout, "every call task to end")
        calls = await asyncio.to_thread(self.app.store.calls.recent)
        return [call.to_json() for call in reversed(calls)]

    def active_gauge(self) -> float:
        value = self.app.metrics.registry.get_sample_value("numcfg_active_calls")
        return float(value or 0.0)

    async def assert_idle(self) -> None:
        """Nothing of any call outlives it: no task, the gauge at 0, no employee claimed."""
        assert not self.app.services.active, f"tasks left: {list(self.app.services.active)}"
        assert self.active_gauge() == 0, f"active calls gauge at {self.active_gauge()}"
        assert await self.app.services.claims.busy() == set(), "employee claims left"

    # -- playbacks -------------------------------------------------------------------------
    def _behaviour(self, media: str) -> PlayBehaviour:
        """A list of media ("a,b": one playback of several) behaves as the first of them
        with a plan left, else as its last one by default."""
        items = media.split(",")
        for item in items:
            plan = self.play_plans.get(item)
            if plan:
                return plan.pop(0)
        return self.default_play.get(items[-1], "finish")

    def _play(self, req: Request, m: dict[str, str]) -> Reply:
        cid = m["id"]
        if cid not in self.fake.channels:
            return Reply(404, {"message": "Channel not found"})
        media = req.params.get("media")
        if not media:
            return Reply(400, {"message": "Required parameter media not found"})
        pid = m.get("pid") or req.params.get("playbackId") or model.unique_id()
        playback = model.playback_json(pid, media_uri=media, target_uri=f"channel:{cid}")
        behaviour = self._behaviour(media)
        if behaviour != "never_start":
            self.fake.playbacks[pid] = playback
            self._later(self._run_playback(pid, playback, behaviour))
        return Reply(201, playback)

    async def _run_playback(
        self, pid: str, playback: dict[str, Any], behaviour: PlayBehaviour
    ) -> None:
        await asyncio.sleep(0.005)  # after the REST answer, as Asterisk orders them
        if pid not in self.fake.playbacks:
            return
        await self.fake.send_event(
            {"type": "PlaybackStarted", "playback": {**playback, "state": "playing"}}
        )
        if behaviour == "hold":
            return  # until DELETE /playbacks (the model emits PlaybackFinished)
        await asyncio.sleep(PLAY_SECONDS)
        if pid in self.fake.playbacks:  # not stopped meanwhile
            await self.fake.send_event(
                {"type": "PlaybackFinished", "playback": {**playback, "state": "done"}}
            )

    def _later(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def start_engine(
    fake: FakeAri, tmp_path: Path, override: dict[str, Any] | None = None
) -> Engine:
    """Write the config, build and start the App, wait for its first connection and its
    reconciliation (so the event filter is set before the test sends anything)."""
    path = tmp_path / "numcfg.yaml"
    path.write_text(yaml.safe_dump(engine_config(fake, tmp_path, override), sort_keys=False))
    app = App(path)
    engine = Engine(fake=fake, app=app, config_path=path)
    engine.install()
    await app.start()
    assert await app.stream.wait_connected(WAIT_SECONDS), "numcfg did not connect to the fake"
    await fake.wait_request("PUT", rf"/applications/{APP}/eventFilter", WAIT_SECONDS)
    await fake.wait_request("GET", rf"/applications/{APP}", WAIT_SECONDS)
    return engine


async def stop_engine(engine: Engine, drain_timeout: float = 2.0) -> None:
    """Drain (calls still running are cancelled after `drain_timeout`) and stop."""
    try:
        await engine.app.drain(timeout=drain_timeout)
    finally:
        await engine.app.stop()
        await engine.close()
