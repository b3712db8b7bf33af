"""A call's inbox: the ordered events of every resource the call owns."""

from __future__ import annotations

import asyncio
import itertools
import uuid

from .events import (
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    Event,
    StasisEnd,
)
from .router import EventRouter

# Our own ids, so routes exist before ARI reports anything about the resource: a random
# per-process part (unique across restarts and nodes) and a counter (cheap per id).
_PROCESS = uuid.uuid4().hex[:12]
_COUNTER = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}-{_PROCESS}-{next(_COUNTER)}"


class Inbox:
    """Events for one call, consumed in order by the call's single coroutine.

    `primary` is the caller's channel: its hangup and DTMF are tracked here so every media
    helper sees them, even when they arrive while another helper is running.
    """

    def __init__(self, router: EventRouter, primary: str) -> None:
        self._router = router
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._claimed: set[str] = set()
        self.primary = primary
        self.hung_up = False
        self.digits: list[str] = []
        self.claim(primary)

    # EventSink
    def deliver(self, event: Event) -> None:
        self._queue.put_nowait(event)

    def claim(self, resource_id: str) -> None:
        self._claimed.add(resource_id)
        self._router.claim(resource_id, self)

    def release(self, resource_id: str) -> None:
        self._claimed.discard(resource_id)
        self._router.release(resource_id, self)

    def release_all(self) -> None:
        for rid in list(self._claimed):
            self.release(rid)

    def take_digits(self) -> str:
        text = "".join(self.digits)
        self.digits.clear()
        return text

    async def get(self, timeout: float | None = None) -> Event | None:
        """Next event, or None after `timeout` seconds. Updates hangup and DTMF state."""
        try:
            if timeout is None:
                event = await self._queue.get()
            elif timeout <= 0:
                event = self._queue.get_nowait()
            else:
                event = await asyncio.wait_for(self._queue.get(), timeout)
        except (TimeoutError, asyncio.QueueEmpty):
            return None
        self._observe(event)
        return event

    def _observe(self, event: Event) -> None:
        match event:
            case ChannelDtmfReceived(channel=ch, digit=digit) if ch.id == self.primary:
                self.digits.append(digit)
            case (
                StasisEnd(channel=ch)
                | ChannelHangupRequest(channel=ch)
                | ChannelDestroyed(channel=ch)
            ) if ch.id == self.primary:
                self.hung_up = True
