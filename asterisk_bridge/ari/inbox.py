"""A call's inbox: the events of every resource the call owns, fanned out to the waits
that asked for them.

Contract (why it is shaped this way):
- A wait *subscribes* (`watch`) to the resource ids and event types it needs before it
  acts, and reads only its own subscription. Several waits may hold subscriptions at
  once (a conversation and its recording): each gets its own copy of a matching event.
- An event no subscription takes reaches the base handler (`_unclaimed`), never the
  floor: it is counted and logged, and the caller's state is updated from it anyway.
- The caller's hangup and digits are the base handler's: they are observed for every
  event as it is delivered (`hung_up`, `digits`), and the caller's hangup is handed to
  every open subscription, so any wait wakes up when the caller leaves.
- After a websocket gap (`StreamResumed`) the inbox re-checks every channel, bridge,
  playback and recording the call owns and synthesises the endings that were lost, so
  no wait, claim or recording outlives its channels, and a conversation whose channels
  are still up goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import uuid
from enum import Enum
from types import TracebackType
from typing import Any

from .client import AriClient
from .errors import AriError, AriNotFound
from .events import (
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    Event,
    StasisEnd,
    StasisStart,
    StreamResumed,
    parse_event,
    recording_name,
    resource_ids,
)
from .router import EventRouter

log = logging.getLogger("numcfg.ari")

# Our own ids, so routes exist before ARI reports anything about the resource: a random
# per-process part (unique across restarts and nodes) and a counter (cheap per id).
_PROCESS = uuid.uuid4().hex[:12]
_COUNTER = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}-{_PROCESS}-{next(_COUNTER)}"


_OUR_ID = re.compile(r"[a-z0-9]+-[0-9a-f]{12}-[0-9]+")


def made_by_new_id(resource_id: str) -> bool:
    """Whether `resource_id` is one new_id made, in this process or an earlier one: a
    channel numcfg originated (never the far half of a Local leg, named by Asterisk)."""
    return _OUR_ID.fullmatch(resource_id) is not None


class Kind(Enum):
    """What an owned id names: decides how it is re-checked after a websocket gap."""

    CHANNEL = "channel"
    BRIDGE = "bridge"
    PLAYBACK = "playback"
    RECORDING = "recording"


class Subscription:
    """The events of some resources (optionally of some types) for one wait."""

    def __init__(self, inbox: Inbox, ids: frozenset[str], types: tuple[type[Event], ...]) -> None:
        self._inbox = inbox
        self.ids = set(ids)
        self.types = types
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    def matches(self, event: Event) -> bool:
        if self.types and not isinstance(event, self.types):
            return False
        return any(rid in self.ids for rid in resource_ids(event))

    def add(self, *ids: str) -> None:
        """Also take the events of `ids` from now on (a leg joining a conversation is
        added before it is created, so none of its events can fall between two waits)."""
        self.ids.update(ids)

    def put(self, event: Event) -> None:
        self._queue.put_nowait(event)

    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event of this subscription, or None after `timeout` seconds."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        if timeout is not None and timeout <= 0:
            return None
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return None

    def open(self) -> Subscription:
        self._inbox._subscriptions.append(self)
        return self

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self._inbox._subscriptions.remove(self)

    def __enter__(self) -> Subscription:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Inbox:
    """Events for one call; `primary` is the caller's channel."""

    def __init__(self, router: EventRouter, client: AriClient, primary: str) -> None:
        self._router = router
        self._client = client
        self._claimed: dict[str, Kind] = {}
        self._subscriptions: list[Subscription] = []
        self._in_stasis: set[str] = {primary}
        self._rechecks: set[asyncio.Task[None]] = set()
        self.primary = primary
        self.hung_up = False
        self.gone = asyncio.Event()
        self.digits: list[str] = []
        self.unclaimed = 0  # events no wait asked for (seen by the base handler)
        self.claim(primary, Kind.CHANNEL)

    # EventSink
    def deliver(self, event: Event) -> None:
        if isinstance(event, StreamResumed):
            self._start_recheck()
            return
        self._observe(event)
        if self._is_caller_end(event):
            targets = list(self._subscriptions)
        else:
            targets = [s for s in self._subscriptions if s.matches(event)]
        if not targets:
            self._unclaimed(event)
        for subscription in targets:
            subscription.put(event)

    def watch(self, *ids: str, types: tuple[type[Event], ...] = ()) -> Subscription:
        """A subscription to `ids` (and only `types`, when given); use as a context
        manager, opened before the request whose events it waits for."""
        return Subscription(self, frozenset(ids), types)

    def claim(self, resource_id: str, kind: Kind) -> None:
        self._claimed[resource_id] = kind
        self._router.claim(resource_id, self)

    def release(self, resource_id: str) -> None:
        self._claimed.pop(resource_id, None)
        self._in_stasis.discard(resource_id)
        self._router.release(resource_id, self)

    def release_all(self) -> None:
        for rid in list(self._claimed):
            self.release(rid)
        for task in self._rechecks:
            task.cancel()

    def owned(self, kind: Kind) -> list[str]:
        return [rid for rid, k in self._claimed.items() if k is kind]

    def mark_gone(self) -> None:
        """The caller's channel is known to be gone (e.g. a 404 on it)."""
        self.hung_up = True
        self.gone.set()

    def take_digits(self) -> str:
        text = "".join(self.digits)
        self.digits.clear()
        return text

    def _is_caller_end(self, event: Event) -> bool:
        match event:
            case (
                StasisEnd(channel=ch)
                | ChannelHangupRequest(channel=ch)
                | ChannelDestroyed(channel=ch)
            ) if ch.id == self.primary:
                return True
        return False

    def _observe(self, event: Event) -> None:
        match event:
            case ChannelDtmfReceived(channel=ch, digit=digit) if ch.id == self.primary:
                self.digits.append(digit)
            case StasisStart(channel=ch):
                self._in_stasis.add(ch.id)
            case _ if self._is_caller_end(event):
                self.mark_gone()

    def _unclaimed(self, event: Event) -> None:
        self.unclaimed += 1
        log.debug("call channel %s: %s taken by no wait", self.primary, event.type)

    # -- after a websocket gap ------------------------------------------------------------
    def _start_recheck(self) -> None:
        task = asyncio.get_running_loop().create_task(self._recheck())
        self._rechecks.add(task)
        task.add_done_callback(self._rechecks.discard)

    async def _recheck(self) -> None:
        """Ask Asterisk about everything we own; deliver the endings the gap swallowed."""
        for rid, kind in list(self._claimed.items()):
            try:
                synthetic = await self._lost_event(rid, kind)
            except AriError as exc:
                log.warning("re-check of %s %s failed: %s", kind.value, rid, exc)
                continue
            if synthetic is not None and rid in self._claimed:
                log.info("%s %s: %s lost in a websocket gap", kind.value, rid, synthetic.type)
                self.deliver(synthetic)

    async def _lost_event(self, rid: str, kind: Kind) -> Event | None:
        client = self._client
        match kind:
            case Kind.CHANNEL:
                try:
                    info = await client.channel(rid)
                except AriNotFound:
                    return _synthetic(
                        "ChannelDestroyed",
                        channel={"id": rid},
                        cause=0,
                        cause_txt="lost in a websocket gap",
                    )
                app_args = info.app_data.split(",")
                in_our_app = info.app_name == "Stasis" and app_args[0] == client.app
                if rid not in self._in_stasis and in_our_app:
                    # Answered during the gap: an originated leg enters our app on answer.
                    return _synthetic(
                        "StasisStart",
                        channel={"id": rid, "name": info.name, "state": str(info.state)},
                        args=app_args[1:],
                    )
            case Kind.BRIDGE:
                if not await client.bridge_exists(rid):
                    return _synthetic("BridgeDestroyed", bridge={"id": rid})
            case Kind.PLAYBACK:
                if not await client.playback_exists(rid):
                    return _synthetic("PlaybackFinished", playback={"id": rid, "state": "done"})
            case Kind.RECORDING:
                name = recording_name(rid) or rid
                if await client.live_recording(name) is None:
                    if await client.stored_recording_exists(name):
                        return _synthetic(
                            "RecordingFinished", recording={"name": name, "state": "done"}
                        )
                    return _synthetic(
                        "RecordingFailed",
                        recording={"name": name, "state": "failed", "cause": "lost"},
                    )
        return None


def _synthetic(kind: str, **fields: Any) -> Event:
    # Parsed by the same code as Asterisk's events, so every wait matches it as usual.
    return parse_event({"type": kind, "synthetic": True, **fields})
