"""A conversation: the caller's bridge and whoever talks to the caller in it now.

The bridge lives as long as the conversation, whoever talks in it: a transfer
(features/transfer.py) swaps the party, so the bridge's recording goes on across it.
One subscription serves the whole conversation (the caller, the bridge, and every leg
that joins, added before the leg exists); events of a leg that is no longer the party
are ignored.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field

from ...ari.errors import AriError, AriNotFound
from ...ari.events import Channel, ChannelDtmfReceived, ChannelTransfer, Event
from ...ari.inbox import Subscription
from ...policy.transfer import KeypadCommand, KeypadReader, TransferCodes
from ...policy.types import Direction
from ..features import transfer
from .call import Call
from .connect import TalkEnd, leg_ended
from .party import Party, TransferAsked

log = logging.getLogger("numcfg.calls")

# DTMF from bridged channels reaches the app only when the bridge is not native
# (ARI-NOTES: "mixing,dtmf_events", in that order).
CONVERSATION_BRIDGE = "mixing,dtmf_events"


@dataclass
class Conversation:
    call: Call
    party: Party
    bridge_id: str = ""
    events: Subscription | None = None
    reader: KeypadReader = field(init=False)
    busy: bool = False  # a transfer is being carried out (the API answers 409)
    consulting: bool = False  # an attended transfer's consultation is going on
    ended: TalkEnd | None = None  # set by a transfer that ends the conversation
    queue_id: str | None = None  # TalkEnd.TO_QUEUE
    voicemail_owner: str | None = None  # TalkEnd.TO_VOICEMAIL
    claimed: set[str] = field(default_factory=set)  # employees the transfers claimed

    def __post_init__(self) -> None:
        codes = self.call.config.asterisk.transfer_codes
        self.reader = KeypadReader(
            TransferCodes(blind=codes.blind, attended=codes.attended, cancel=codes.cancel)
        )

    @property
    def transferable(self) -> bool:
        """Only a caller's call is handed on: in an outgoing call or a callback the
        primary channel is the employee, not a client."""
        return self.call.record.direction == Direction.INCOMING

    def ask(self, to: str, mode: str) -> None:
        """Queue an API request for the conversation; a transfer marks it busy at once,
        so a second request is refused (409) until this one is carried out."""
        if mode not in ("complete", "cancel"):
            self.busy = True
        channel = Channel.from_json({"id": self.call.channel_id})
        self.call.inbox.deliver(TransferAsked("TransferAsked", {}, channel, to, mode))

    async def run(self) -> TalkEnd:
        call = self.call
        self.bridge_id = call.new_bridge_id()
        runtime = call.services.runtime
        runtime.conversations[call.record.id] = self
        try:
            with call.inbox.watch(
                call.channel_id, self.bridge_id, self.party.leg.channel_id
            ) as events:
                self.events = events
                await call.client.create_bridge(
                    self.bridge_id, kind=CONVERSATION_BRIDGE, name=call.record.id
                )
                # One side may hang up in between (404): the loop below sees which.
                with contextlib.suppress(AriNotFound):
                    # An employee's digits are transfer codes, not for the caller's ear
                    # (absorbed: they still reach numcfg).
                    await call.client.add_to_bridge(
                        self.bridge_id,
                        [call.channel_id, self.party.leg.channel_id],
                        absorb_dtmf=self.party.employee_id is not None,
                    )
                await call.on_bridged(self.bridge_id)
                ended = await self._talk(events)
        finally:
            runtime.conversations.pop(call.record.id, None)
        await call.on_unbridged(self.bridge_id)
        await self._leave(ended)
        return ended

    async def join(self, party: Party) -> bool:
        """Put `party` in the caller's bridge; False when its leg is gone."""
        try:
            await self.call.client.add_to_bridge(
                self.bridge_id, [party.leg.channel_id], absorb_dtmf=party.employee_id is not None
            )
        except AriError as exc:
            log.info("call %s: %s cannot join: %s", self.call.record.id, party.leg.target, exc)
            return False
        self.party = party
        self.reader.reset()
        return True

    def end(self, how: TalkEnd) -> None:
        self.ended = how

    async def _talk(self, events: Subscription) -> TalkEnd:
        call = self.call
        while not call.hung_up:
            if self.ended is not None:
                return self.ended
            deadline = self.reader.deadline
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            event = await events.next(timeout)
            if event is None:
                await self._keypad(self.reader.expire(time.monotonic()))
                continue
            if leg_ended(event, self.party.leg.channel_id, self.bridge_id):
                return TalkEnd.CALLEE_HUNG_UP if not call.hung_up else TalkEnd.CALLER_HUNG_UP
            await self._on_event(event)
        return TalkEnd.CALLER_HUNG_UP

    async def _on_event(self, event: Event) -> None:
        leg_id = self.party.leg.channel_id
        match event:
            case ChannelDtmfReceived(channel=ch, digit=digit) if ch.id == leg_id:
                # Keypad codes are listened to on employees' legs only: a caller's
                # digits (the primary channel) never transfer anything.
                if self.party.employee_id is not None and self.transferable:
                    await self._keypad(self.reader.feed(digit, time.monotonic()))
            case ChannelTransfer(channel=ch, state="") if ch.id == leg_id:
                await transfer.from_phone(self, event)
            case ChannelTransfer(channel=ch, state="") if ch.id == self.call.channel_id:
                # The employee's own call out (the primary channel): not transferred yet;
                # the phone is told no rather than left waiting.
                await transfer.decline_phone(self.call, ch.id)
            case TransferAsked(to=to, mode=mode):
                await transfer.from_api(self, to, mode)

    async def _keypad(self, command: KeypadCommand | None) -> None:
        if command is not None:
            await transfer.from_keypad(self, command)

    async def _leave(self, ended: TalkEnd) -> None:
        """Nothing of the conversation outlives it: the party's leg (unless it hung up)
        and the bridge; the claims the transfers took are released."""
        call = self.call
        leg_id = self.party.leg.channel_id
        if ended is not TalkEnd.CALLEE_HUNG_UP:
            with contextlib.suppress(AriError):
                await call.client.hangup(leg_id)
        call.forget_channel(leg_id)
        with contextlib.suppress(AriError):
            await call.client.destroy_bridge(self.bridge_id)
        call.forget_bridge(self.bridge_id)
        for employee_id in self.claimed:
            await call.services.claims.release(employee_id, call.record.id)
