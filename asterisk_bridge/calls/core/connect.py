"""Ring one destination (an employee's phone, a mobile, an external number) and, on
answer, bridge it with the caller until one side hangs up."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from enum import Enum

from ...ari.errors import AriError, AriNotFound
from ...ari.events import (
    BridgeDestroyed,
    ChannelDestroyed,
    ChannelHangupRequest,
    ChannelState,
    ChannelStateChange,
    Dial,
    DialStatus,
    Event,
    HangupKind,
    StasisEnd,
    StasisStart,
    dial_kind,
    hangup_kind,
)
from ...ari.inbox import Kind, Subscription, new_id
from ...ari.playback_stop import stop_playback_surely
from .call import Call

log = logging.getLogger("numcfg.calls")

# Asterisk's dial timeout ends an unanswered leg; this margin only guards against a lost
# event so a call can never wait forever on a leg.
DIAL_GUARD_SECONDS = 5.0
# A created channel enters Stasis within milliseconds on a local Asterisk.
LEG_STASIS_SECONDS = 5.0
# The caller hears the ring tone once the rung leg says it rings (its Dial RINGING; or
# PROGRESS, a trunk's early media, which the caller cannot hear: the leg is bridged only
# when answered), as Dial() relays the callee's ringing. A leg that says nothing (a Local
# channel into dialplan, a quiet trunk) gets the tone after this grace all the same, so no
# caller waits in silence. A phone that answers at once (auto-answer, an intercom, the
# benchmark's employees) gets none: no tone to start and stop, which is two requests, a
# playback and its two events fewer per call (issue 15).
RINGBACK_GRACE_SECONDS = 0.5
_RINGING_STATUSES = (DialStatus.RINGING, DialStatus.PROGRESS)
# How a leg's end (its hangup cause, or its Dial status) counts for the flow.
_OUTCOME_OF_KIND = {
    HangupKind.BUSY: "busy",
    HangupKind.NO_ANSWER: "no_answer",
    HangupKind.NORMAL: "no_answer",  # cleared before answering: nobody took it
    HangupKind.UNAVAILABLE: "failed",
}


class RingOutcome(Enum):
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    CALLER_HUNG_UP = "caller_hung_up"


class TalkEnd(Enum):
    CALLER_HUNG_UP = "caller"
    CALLEE_HUNG_UP = "callee"
    TO_QUEUE = "to_queue"  # transferred to a queue: the flow runs it next
    TO_VOICEMAIL = "to_voicemail"  # a blind transfer nobody took: the target's mailbox
    ABANDONED = "abandoned"  # a transfer nobody took and no way back: the call ends


@dataclass(frozen=True, slots=True)
class Leg:
    channel_id: str
    target: str


async def ring(
    call: Call,
    endpoint: str,
    *,
    ring_time: float,
    caller_id: str | None = None,
    ringback: bool = True,
    ringback_to: str | None = None,
) -> tuple[RingOutcome, Leg | None]:
    """Ring `endpoint` for `ring_time` seconds while the caller (or the channel
    `ringback_to`: a transferer consulting) hears ringing once the leg rings."""
    leg_id = call.new_channel_id()
    with call.inbox.watch(leg_id) as leg_events:
        if not await _originate(call, leg_id, endpoint, ring_time=ring_time, caller_id=caller_id):
            return RingOutcome.CALLER_HUNG_UP if call.hung_up else RingOutcome.FAILED, None
        tone = Ringback(call, ringback_to or call.channel_id) if ringback else None
        try:
            outcome = await await_answer(
                call,
                leg_events,
                leg_id,
                ring_time + DIAL_GUARD_SECONDS,
                answered_on_stasis=True,
                ringback=tone,
            )
        finally:
            if tone is not None:
                await tone.stop()
    if outcome is not RingOutcome.ANSWERED:
        await _drop_leg(call, leg_id)
        return outcome, None
    return outcome, Leg(leg_id, endpoint)


class Ringback:
    """The ring tone `channel_id` hears while a leg rings: started once (the leg's first
    sign of ringing, or `due`, whichever comes first), stopped for sure at the end."""

    def __init__(self, call: Call, channel_id: str) -> None:
        self._call = call
        self._channel_id = channel_id
        self.due = time.monotonic() + RINGBACK_GRACE_SECONDS
        self._tone_id: str | None = None

    @property
    def started(self) -> bool:
        return self._tone_id is not None

    async def start(self) -> None:
        if self._tone_id is not None:
            return
        self._tone_id = new_id("pb")
        self._call.inbox.claim(self._tone_id, Kind.PLAYBACK)
        with contextlib.suppress(AriError):
            await self._call.client.play(self._channel_id, "tone:ring", playback_id=self._tone_id)

    async def stop(self) -> None:
        if self._tone_id is None:
            return
        # Not a plain stop: Asterisk can refuse one while the tone starts, and a tone left
        # playing blocks the bridge (see ari/playback_stop.py).
        await stop_playback_surely(self._call.client, self._tone_id)
        self._call.inbox.release(self._tone_id)


async def _originate(
    call: Call, leg_id: str, endpoint: str, *, ring_time: float, caller_id: str | None
) -> bool:
    """Dial `endpoint` in one request: an originated channel enters our app (StasisStart)
    only when answered, so the answer needs no separate create + dial round trips."""
    try:
        await call.client.originate(
            endpoint=endpoint,
            channel_id=leg_id,
            app_args="leg",
            caller_id=caller_id,
            timeout=max(1, round(ring_time)),
            originator=call.channel_id,
            variables=leg_variables(endpoint),
        )
    except AriError as exc:
        log.warning("call %s: cannot ring %s: %s", call.record.id, endpoint, exc)
        call.forget_channel(leg_id)
        await _check_caller(call)
        return False
    return True


def leg_variables(endpoint: str) -> dict[str, str] | None:
    """A phone's REFER on a PJSIP leg we create reaches numcfg (ChannelTransfer), not
    Asterisk's own transfer code, which would take the call out of our bridge. The
    function exists on PJSIP channels only (Asterisk 22.3+)."""
    if endpoint.upper().startswith("PJSIP/"):
        return {"PJSIP_TRANSFER_HANDLING()": "ari-only"}
    return None


async def _check_caller(call: Call) -> None:
    """A failed originate may mean the caller's channel is gone without our having been
    told (its hangup lost in a websocket gap): ask, so a flow never retries forever."""
    try:
        await call.client.get_channel(call.channel_id)
    except AriNotFound:
        call.inbox.mark_gone()
    except AriError:
        pass


async def wait_in_stasis(call: Call, leg_events: Subscription, leg_id: str) -> None:
    """/channels/create returns before the channel is in our app; /dial before its
    StasisStart answers 409, so wait for it."""
    deadline = time.monotonic() + LEG_STASIS_SECONDS
    while (remaining := deadline - time.monotonic()) > 0:
        match await leg_events.next(remaining):
            case StasisStart(channel=ch) if ch.id == leg_id:
                return
            case ChannelDestroyed(channel=ch) if ch.id == leg_id:
                raise AriNotFound(404, "leg hung up before ringing", method="POST", path="dial")
    raise AriError(0, "leg never entered Stasis", method="POST", path="dial")


def _outcome_of(kind: HangupKind) -> RingOutcome:
    return RingOutcome(_OUTCOME_OF_KIND[kind])


async def await_answer(
    call: Call,
    leg_events: Subscription,
    leg_id: str,
    guard: float,
    *,
    answered_on_stasis: bool = False,
    ringback: Ringback | None = None,
) -> RingOutcome:
    """Wait for the leg's answer. An originated leg counts as answered at its StasisStart
    (it must be in our app before it can join a bridge); a created-then-dialed one, which
    is already in the app, at its Dial ANSWER or state Up. `ringback` is started when the
    leg rings, or at its due time."""
    deadline = time.monotonic() + guard
    while True:
        if call.hung_up:
            return RingOutcome.CALLER_HUNG_UP
        now = time.monotonic()
        remaining = deadline - now
        if remaining <= 0:
            return RingOutcome.NO_ANSWER
        if ringback is not None and not ringback.started:
            if now >= ringback.due:
                await ringback.start()
                continue
            remaining = min(remaining, ringback.due - now)
        event = await leg_events.next(remaining)
        match event:
            case StasisStart(channel=ch) if ch.id == leg_id and answered_on_stasis:
                return RingOutcome.ANSWERED
            case Dial(peer=peer) as dial if peer.id == leg_id:
                if dial.status is DialStatus.ANSWER and not answered_on_stasis:
                    return RingOutcome.ANSWERED
                if (kind := dial_kind(dial.status)) is not None:
                    return _outcome_of(kind)
                if ringback is not None and dial.status in _RINGING_STATUSES:
                    await ringback.start()
            case ChannelStateChange(channel=ch) if ch.id == leg_id:
                # Sent only by an Asterisk that ignores the event filter (events.py).
                if ch.channel_state is ChannelState.UP and not answered_on_stasis:
                    return RingOutcome.ANSWERED
                if ringback is not None and ch.channel_state is ChannelState.RINGING:
                    await ringback.start()
            case ChannelDestroyed(channel=ch, cause=cause) if ch.id == leg_id:
                return _outcome_of(hangup_kind(cause))
            case ChannelHangupRequest(channel=ch, cause=cause) if ch.id == leg_id:
                return _outcome_of(hangup_kind(cause))
            case StasisEnd(channel=ch) if ch.id == leg_id:
                return RingOutcome.NO_ANSWER


async def _drop_leg(call: Call, leg_id: str, *, gone: bool = False) -> None:
    """Hang up a leg we no longer want; `gone`: Asterisk already destroyed it, so only
    our bookkeeping is left (a DELETE would just answer 404)."""
    if not gone:
        with contextlib.suppress(AriError):
            await call.client.hangup(leg_id)
    call.forget_channel(leg_id)


def leg_ended(event: Event | None, leg_id: str, bridge_id: str) -> bool:
    """The leg left the conversation: hung up, out of our app, or its bridge is gone."""
    match event:
        case (
            ChannelHangupRequest(channel=ch) | ChannelDestroyed(channel=ch) | StasisEnd(channel=ch)
        ) if ch.id == leg_id:
            return True
        case BridgeDestroyed(bridge_id=bid) if bid == bridge_id:
            return True  # Asterisk restarted or the bridge was torn down under us
    return False


async def ring_many(
    call: Call, endpoints: dict[str, str], *, ring_time: float, rang_out: set[str] | None = None
) -> tuple[str, Leg] | None:
    """Ring several endpoints at once (all_at_once queues): the first to answer wins and
    the others stop ringing at once. Returns (key, leg) of the winner, or None; the keys
    whose phones rang until the end, unanswered, are added to `rang_out`."""
    keys = {call.new_channel_id(): key for key in endpoints}
    legs: dict[str, str] = {}
    with call.inbox.watch(*keys) as events:
        for leg_id, key in keys.items():
            if await _originate(
                call,
                leg_id,
                endpoints[key],
                ring_time=ring_time,
                caller_id=call.record.caller or None,
            ):
                legs[leg_id] = key
        winner: str | None = None
        deadline = time.monotonic() + ring_time + DIAL_GUARD_SECONDS
        while legs and winner is None and not call.hung_up:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            match await events.next(remaining):
                case StasisStart(channel=ch) if ch.id in legs:
                    winner = ch.id  # an originated leg enters our app when answered
                case Dial(peer=peer) as dial if peer.id in legs and dial_kind(dial.status):
                    await _drop_leg(call, peer.id)
                    legs.pop(peer.id, None)
                case ChannelDestroyed(channel=ch) if ch.id in legs:
                    await _drop_leg(call, ch.id, gone=True)
                    legs.pop(ch.id, None)
                case ChannelHangupRequest(channel=ch) if ch.id in legs:
                    await _drop_leg(call, ch.id)
                    legs.pop(ch.id, None)
    for leg_id in list(legs):
        if leg_id != winner:
            await _drop_leg(call, leg_id)
            if winner is None and rang_out is not None and not call.hung_up:
                rang_out.add(legs[leg_id])
    if winner is None:
        return None
    return legs[winner], Leg(winner, endpoints[legs[winner]])
