"""Who talks to the caller in a conversation, and the API's transfer request as an event."""

from __future__ import annotations

from dataclasses import dataclass

from ...ari.events import ChannelEvent
from .connect import Leg


@dataclass(frozen=True, slots=True)
class Party:
    """A leg in the caller's bridge, and the employee on it (None: an external party)."""

    leg: Leg
    employee_id: str | None


@dataclass(frozen=True, slots=True)
class TransferAsked(ChannelEvent):
    """Not from Asterisk: POST /api/calls/{id}/transfer, delivered through the call's
    inbox so the conversation reads it in order with the call's own events. `mode` is
    blind, attended, or complete / cancel for an attended transfer in progress."""

    to: str
    mode: str
