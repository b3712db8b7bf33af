"""The test side of a call: scripted callers, employees and a trunk on the real rig.

One websocket as ARI app `numcfg-test` with subscribeAll, so the harness also *observes*
every event of numcfg's channels (what the caller heard, what was bridged). subscribeAll
is fine here: this is the test harness, never numcfg's hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from asterisk_bridge.ari.client import AriClient
from asterisk_bridge.ari.errors import AriError

TEST_APP = "numcfg-test"
# Generous: a CI machine with 2 cores may be busy; tests wait for events, never sleep fixed.
DEFAULT_WAIT_SECONDS = 15.0


@dataclass
class Employee:
    """What a scripted employee does when rung: answer (after a delay), reject, or ignore."""

    action: str = "answer"  # answer | reject | ignore | busy
    answer_after: float = 0.5
    hangup_after: float | None = None  # seconds after answering (employee hangs up first)
    rings: bool = False  # says it rings before answering (a SIP phone's 180 Ringing)
    rung: int = 0


@dataclass
class CallerLeg:
    caller_id: str  # the ;1 half, in the harness app: "the caller's phone"
    far_id: str  # the ;2 half, what numcfg sees as the incoming channel


@dataclass
class Harness:
    client: AriClient
    session: aiohttp.ClientSession
    ws_url: str
    events: list[dict[str, Any]] = field(default_factory=list)
    employees: dict[str, Employee] = field(default_factory=dict)
    trunk_reached: list[str] = field(default_factory=list)
    trunk_hangup_after: float | None = None  # the external party hangs up after answering
    employee_channels: dict[str, list[str]] = field(default_factory=dict)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _reader: asyncio.Task[None] | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    # Times the harness's websocket was cut and reconnected: events in a gap are lost.
    reconnects: int = 0

    async def start(self) -> None:
        await self._connect()
        self._reader = asyncio.create_task(self._read_forever())

    async def _connect(self) -> None:
        self._ws = await self.session.ws_connect(
            self.ws_url, headers={"Authorization": self.client.auth_header}, heartbeat=5
        )
        self.connected = asyncio.Event()
        self.connected.set()

    async def _read_forever(self) -> None:
        # Tests reload res_ari to cut websockets: the harness reconnects like numcfg does.
        while True:
            await self._read()
            self.connected.clear()
            self.reconnects += 1
            while True:
                await asyncio.sleep(0.2)
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    await self._connect()
                    break

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._ws.close()
        for task in list(self._tasks):
            task.cancel()

    def reset(self) -> None:
        self.events.clear()
        self.employees.clear()
        self.trunk_reached.clear()
        self.trunk_hangup_after = None
        self.employee_channels.clear()

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            event["_t"] = time.monotonic()
            self.events.append(event)
            if event.get("type") == "StasisStart" and event.get("application") == TEST_APP:
                args = event.get("args") or []
                if args[:1] == ["trunk"]:
                    # Recorded here, not in the task: a test that saw this event must see it.
                    self.trunk_reached.append(args[1])
                self._spawn(self._on_start(event))
            async with self._changed:
                self._changed.notify_all()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_start(self, event: dict[str, Any]) -> None:
        args = event.get("args") or []
        channel_id = event["channel"]["id"]
        role = args[0] if args else ""
        try:
            if role in ("employee", "phone"):  # a Local employee or a SIP desk phone
                await self._employee(args[1], channel_id)
            elif role == "trunk":
                await self.client.answer(channel_id)
                if self.trunk_hangup_after is not None:
                    await asyncio.sleep(self.trunk_hangup_after)
                    await self.client.hangup(channel_id)
        except AriError:
            pass  # the channel went away while we acted: that is the test's business

    async def _employee(self, ext: str, channel_id: str) -> None:
        behaviour = self.employees.setdefault(ext, Employee())
        behaviour.rung += 1
        self.employee_channels.setdefault(ext, []).append(channel_id)
        match behaviour.action:
            case "reject":
                await self.client.hangup(channel_id, "busy")
            case "busy":
                await self.client.hangup(channel_id, "busy")
            case "ignore":
                return  # rings until numcfg gives up
            case _:
                if behaviour.rings:
                    await self.client.ring(channel_id)
                await asyncio.sleep(behaviour.answer_after)
                await self.client.answer(channel_id)
                if behaviour.hangup_after is not None:
                    await asyncio.sleep(behaviour.hangup_after)
                    await self.client.hangup(channel_id)

    # -- placing calls ------------------------------------------------------------------
    async def call(
        self, exten: str, *, context: str = "numcfg-inbound", caller: str = "+33612345678"
    ) -> CallerLeg:
        leg = CallerLeg(
            caller_id=f"caller-{uuid.uuid4().hex[:12]}", far_id=f"far-{uuid.uuid4().hex[:12]}"
        )
        await self.client.originate(
            endpoint=f"Local/{exten}@{context}",
            channel_id=leg.caller_id,
            other_channel_id=leg.far_id,
            app=TEST_APP,
            app_args="caller",
            caller_id=caller,
            formats="ulaw",  # like a phone behind a SIP trunk (no resampling)
        )
        return leg

    async def press(self, leg: CallerLeg, digits: str) -> None:
        # The caller's half enters the test app once numcfg answers, which may be reported
        # after the first playback on numcfg's half: DTMF before that is a 409.
        await self.wait_for(
            lambda e: e.get("type") == "StasisStart" and e["channel"]["id"] == leg.caller_id,
            what="the caller's phone to be answered",
        )
        await self.client.send_dtmf(leg.caller_id, digits, between_ms=150)

    async def employee_press(self, ext: str, digits: str) -> None:
        """The employee on `ext` presses keys during the conversation (from her phone)."""
        await self.client.send_dtmf(self.employee_channels[ext][-1], digits, between_ms=150)

    async def refer(self, ext: str, target: str) -> None:
        """The SIP desk phone on `ext` transfers its call to `target` (a REFER sent by
        the dialplan's Transfer(); the phone then waits for the result)."""
        channel_id = self.employee_channels[ext][-1]
        await self.client.request(
            "POST",
            f"/channels/{channel_id}/continue",
            params={"context": "numcfg-test-refer", "extension": target, "priority": 1},
        )

    async def bridge_of(self, channel_id: str) -> dict[str, Any] | None:
        """The bridge `channel_id` is in now (Asterisk's view), or None."""
        for bridge in await self.client.list_bridges():
            if channel_id in bridge.get("channels", []):
                return bridge
        return None

    async def hangup(self, leg: CallerLeg) -> None:
        with contextlib.suppress(AriError):
            await self.client.hangup(leg.caller_id)

    # -- observing ----------------------------------------------------------------------
    async def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = DEFAULT_WAIT_SECONDS,
        *,
        what: str = "event",
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        async with self._changed:
            while True:
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self.events)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {what}"
                        f" (harness websocket reconnected {self.reconnects} times)"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    async def heard(
        self, leg: CallerLeg, media: str, timeout: float = DEFAULT_WAIT_SECONDS
    ) -> dict[str, Any]:
        """What the caller heard: a PlaybackStarted of `media` on numcfg's side of the call."""
        return await self.wait_for(
            lambda e: (
                e.get("type") == "PlaybackStarted"
                and e["playback"]["target_uri"] == f"channel:{leg.far_id}"
                and e["playback"]["media_uri"] == media
            ),
            timeout,
            what=f"caller to hear {media}",
        )

    def media_heard(self, leg: CallerLeg) -> list[str]:
        return [
            e["playback"]["media_uri"]
            for e in self.events
            if e.get("type") == "PlaybackStarted"
            and e["playback"]["target_uri"] == f"channel:{leg.far_id}"
        ]

    async def ended(self, leg: CallerLeg, timeout: float = DEFAULT_WAIT_SECONDS) -> dict[str, Any]:
        try:
            return await self.wait_for(
                lambda e: e.get("type") == "ChannelDestroyed" and e["channel"]["id"] == leg.far_id,
                timeout,
                what=f"call {leg.far_id} to end",
            )
        except AssertionError as exc:
            # Say where the call is stuck: the channels still up, and where they are.
            channels = await self.client.list_channels()
            where = [
                f"{c['id']} {c['state']} {c.get('dialplan', {}).get('app_name', '')}"
                for c in channels
            ]
            raise AssertionError(f"{exc}; channels up: {where}") from None

    async def bridged(
        self, leg: CallerLeg, timeout: float = DEFAULT_WAIT_SECONDS
    ) -> dict[str, Any]:
        """The caller's channel entered a bridge (numcfg connected it to someone)."""
        return await self.wait_for(
            lambda e: e.get("type") == "ChannelEnteredBridge" and e["channel"]["id"] == leg.far_id,
            timeout,
            what="caller to be bridged",
        )

    async def employee_rung(
        self, ext: str, timeout: float = DEFAULT_WAIT_SECONDS
    ) -> dict[str, Any]:
        return await self.wait_for(
            lambda e: (
                e.get("type") == "StasisStart"
                and e.get("args") in (["employee", ext], ["phone", ext])
            ),
            timeout,
            what=f"extension {ext} to ring",
        )

    async def trunk_rung(
        self, number: str, timeout: float = DEFAULT_WAIT_SECONDS
    ) -> dict[str, Any]:
        return await self.wait_for(
            lambda e: e.get("type") == "StasisStart" and e.get("args") == ["trunk", number],
            timeout,
            what=f"the trunk to ring {number}",
        )

    async def speak(self, leg: CallerLeg, media: str = "sound:tt-monkeys") -> None:
        """The caller talks: media played on the caller's phone flows to numcfg's side."""
        await self.client.play(leg.caller_id, media, playback_id=f"say-{uuid.uuid4().hex[:10]}")

    async def listen(self, channel_id: str, seconds: float) -> bytes:
        """What a channel hears for `seconds`: a snoop on the audio Asterisk sends to it,
        recorded to WAV (for checking hold music by its sound)."""
        snoop_id = f"snoop-{uuid.uuid4().hex[:10]}"
        name = f"listen-{uuid.uuid4().hex[:10]}"
        await self.client.request(
            "POST",
            f"/channels/{channel_id}/snoop",
            params={"spy": "out", "app": TEST_APP, "appArgs": "snoop", "snoopId": snoop_id},
        )
        # The snoop answers /snoop before it is in the app; /record before that is a 409.
        await self.wait_for(
            lambda e: e.get("type") == "StasisStart" and e["channel"]["id"] == snoop_id,
            what="the snoop channel to enter the test app",
        )
        await self.client.record_channel(snoop_id, name=name, format="wav", ifExists="overwrite")
        await asyncio.sleep(seconds)
        with contextlib.suppress(AriError):
            await self.client.stop_recording(name)
        await self.wait_for(
            lambda e: e.get("type") == "RecordingFinished" and e["recording"]["name"] == name,
            what="the listening recording to finish",
        )
        with contextlib.suppress(AriError):
            await self.client.hangup(snoop_id)
        audio = await self.client.recording_file(name)
        with contextlib.suppress(AriError):
            await self.client.delete_stored_recording(name)
        return audio

    async def assert_clean(self, timeout: float = 10.0) -> None:
        """No channel or bridge may outlive a test."""
        deadline = time.monotonic() + timeout
        while True:
            channels = await self.client.list_channels()
            bridges = await self.client.list_bridges()
            if not channels and not bridges:
                return
            if time.monotonic() > deadline:
                names = [c["name"] for c in channels]
                for channel in channels:  # leave the rig clean for the next test anyway
                    with contextlib.suppress(AriError):
                        await self.client.hangup(channel["id"])
                for bridge in bridges:
                    with contextlib.suppress(AriError):
                        await self.client.destroy_bridge(bridge["id"])
                raise AssertionError(
                    f"left behind: channels {names}, bridges {[b['id'] for b in bridges]}"
                )
            await asyncio.sleep(0.2)


async def calls_done(app: Any, timeout: float = DEFAULT_WAIT_SECONDS) -> list[dict[str, Any]]:
    """Wait until numcfg finished every call (record saved), then return the call details."""
    pending = list(app.services.active.values())
    if pending:
        _done, still = await asyncio.wait(pending, timeout=timeout)
        assert not still, "numcfg calls did not finish"
    calls = await asyncio.to_thread(app.store.calls.recent)
    return [call.to_json() for call in calls]
