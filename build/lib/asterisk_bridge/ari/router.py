"""Routes each event to the one owner of the resource it is about.

Owners claim the ids they create (channel, playback, bridge, recording) *before* asking
ARI to create them, so the route exists when the first event arrives. The websocket reader
calls `dispatch` synchronously: no task per event, and per-owner order is preserved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from .events import Event, resource_ids

log = logging.getLogger("numcfg.ari")


class EventSink(Protocol):
    def deliver(self, event: Event) -> None: ...


class EventRouter:
    def __init__(self, on_unrouted: Callable[[Event], None]) -> None:
        self._routes: dict[str, EventSink] = {}
        self._on_unrouted = on_unrouted

    def claim(self, resource_id: str, sink: EventSink) -> None:
        self._routes[resource_id] = sink

    def release(self, resource_id: str, sink: EventSink) -> None:
        if self._routes.get(resource_id) is sink:
            del self._routes[resource_id]

    def owner(self, resource_id: str) -> EventSink | None:
        return self._routes.get(resource_id)

    def owned_ids(self) -> set[str]:
        return set(self._routes)

    def sinks(self) -> set[EventSink]:
        return set(self._routes.values())

    def dispatch(self, event: Event) -> None:
        for rid in resource_ids(event):
            sink = self._routes.get(rid)
            if sink is not None:
                sink.deliver(event)
                return
        self._on_unrouted(event)
