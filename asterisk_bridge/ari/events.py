"""Typed ARI events. Only the fields numcfg uses are parsed; everything else stays in `raw`.

Parsing happens once, in the websocket reader, so the call coroutines `match` on classes
instead of comparing strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .types import BUSY_CAUSES as BUSY_CAUSES
from .types import NO_ANSWER_CAUSES as NO_ANSWER_CAUSES
from .types import NORMAL_CAUSES as NORMAL_CAUSES
from .types import UNAVAILABLE_CAUSES as UNAVAILABLE_CAUSES
from .types import ChannelState, DialStatus
from .types import HangupKind as HangupKind
from .types import TransferProgress as TransferProgress
from .types import dial_kind as dial_kind
from .types import hangup_kind as hangup_kind

# Routing key of a recording's events. Recordings are named, not id'd, and their names
# are ours, so a prefix keeps them apart from channel / bridge / playback ids.
_RECORDING_KEY_PREFIX = "rec:"


def recording_key(name: str) -> str:
    """The id a recording's events are routed by (see resource_ids)."""
    return f"{_RECORDING_KEY_PREFIX}{name}"


def recording_name(key: str) -> str | None:
    """The recording name in a routing key made by recording_key(), else None."""
    return (
        key.removeprefix(_RECORDING_KEY_PREFIX) if key.startswith(_RECORDING_KEY_PREFIX) else None
    )


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    name: str
    state: str
    caller_number: str
    caller_name: str
    exten: str
    context: str
    channelvars: dict[str, str] = field(default_factory=dict)

    @property
    def channel_state(self) -> ChannelState:
        """`state` as a ChannelState (the field stays the string ARI sent)."""
        return ChannelState.parse(self.state)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Channel:
        caller = data.get("caller") or {}
        dialplan = data.get("dialplan") or {}
        return cls(
            id=data.get("id", ""),
            name=data.get("name", ""),
            state=data.get("state", ""),
            caller_number=caller.get("number", ""),
            caller_name=caller.get("name", ""),
            exten=dialplan.get("exten", ""),
            context=dialplan.get("context", ""),
            channelvars=data.get("channelvars") or {},
        )


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChannelEvent(Event):
    channel: Channel


@dataclass(frozen=True, slots=True)
class StasisStart(ChannelEvent):
    args: list[str]
    replace_channel_id: str | None


@dataclass(frozen=True, slots=True)
class StasisEnd(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class ChannelDtmfReceived(ChannelEvent):
    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class ChannelStateChange(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class ChannelHangupRequest(ChannelEvent):
    cause: int


@dataclass(frozen=True, slots=True)
class ChannelDestroyed(ChannelEvent):
    cause: int
    cause_txt: str


# ChannelEnteredBridge / ChannelLeftBridge are parsed (and routed) but not in
# USED_EVENT_TYPES, so Asterisk does not send them: numcfg knows who it put in a bridge,
# and a member leaving shows as that channel's own hangup events.
@dataclass(frozen=True, slots=True)
class ChannelEnteredBridge(ChannelEvent):
    bridge_id: str


@dataclass(frozen=True, slots=True)
class ChannelLeftBridge(ChannelEvent):
    bridge_id: str


@dataclass(frozen=True, slots=True)
class ChannelTransfer(ChannelEvent):
    """A SIP REFER on `channel` (its PJSIP_TRANSFER_HANDLING is ari-only): Asterisk
    answered 202 and waits for the app to act and report with transfer_progress.

    `state` is empty on the request itself; each transfer_progress the app sends comes
    back as another ChannelTransfer carrying that state. `destination` is the Refer-To
    user part of a blind transfer; `replaces` the SIP Call-ID of the dialog to replace
    (attended), with `replaced_channel` / `replaced_peer` when Asterisk knows them.
    """

    state: str
    destination: str
    replaces: str
    replaced_channel: str
    replaced_peer: str


@dataclass(frozen=True, slots=True)
class Dial(Event):
    peer: Channel
    caller_id: str | None
    dialstatus: str

    @property
    def status(self) -> DialStatus:
        """`dialstatus` as a DialStatus (the field stays the string ARI sent)."""
        return DialStatus.parse(self.dialstatus)


@dataclass(frozen=True, slots=True)
class PlaybackEvent(Event):
    playback_id: str
    target_uri: str
    media_uri: str
    state: str


@dataclass(frozen=True, slots=True)
class PlaybackStarted(PlaybackEvent):
    pass


@dataclass(frozen=True, slots=True)
class PlaybackFinished(PlaybackEvent):
    pass


@dataclass(frozen=True, slots=True)
class RecordingEvent(Event):
    name: str
    target_uri: str
    state: str
    duration: int | None
    cause: str | None


@dataclass(frozen=True, slots=True)
class RecordingStarted(RecordingEvent):
    pass


@dataclass(frozen=True, slots=True)
class RecordingFinished(RecordingEvent):
    pass


@dataclass(frozen=True, slots=True)
class RecordingFailed(RecordingEvent):
    pass


@dataclass(frozen=True, slots=True)
class BridgeDestroyed(Event):
    bridge_id: str


@dataclass(frozen=True, slots=True)
class ApplicationReplaced(Event):
    application: str


@dataclass(frozen=True, slots=True)
class StreamResumed(Event):
    """Not from Asterisk: the event websocket came back after a gap in which events may
    have been lost. Owners re-check the state of what they wait on."""


# The event types numcfg acts on. Everything else (ChannelVarset, ChannelDialplan,
# ChannelCallerId, ChannelEnteredBridge / ChannelLeftBridge...) is filtered out by
# Asterisk: about a third of a call's events, each costing Asterisk a JSON dump and a
# websocket write.
# ChannelHangupRequest and ChannelStateChange are left out too (6 of a plain call's 22
# events; issue 15): a hangup shows as StasisEnd and ChannelDestroyed, which carries the
# cause; a dialed leg's answer as its Dial ANSWER, an originated leg's as its StasisStart.
# The engine still reads them where an Asterisk without event filters sends them.
USED_EVENT_TYPES = [
    "StasisStart",
    "StasisEnd",
    "ChannelDtmfReceived",
    "ChannelDestroyed",
    "Dial",
    "ChannelTransfer",  # a REFER from an employee's phone (SPEC section 8)
    "PlaybackStarted",
    "PlaybackFinished",
    "RecordingStarted",
    "RecordingFinished",
    "RecordingFailed",
    # A bridge torn down under a call (Asterisk restart, or gone during a websocket gap):
    # the talk loop ends on it instead of waiting for members that will never leave.
    "BridgeDestroyed",
    "ApplicationReplaced",
    "RESTResponse",  # answers to REST requests sent over the websocket
]

_CHANNEL_EVENTS: dict[str, type[ChannelEvent]] = {
    "StasisEnd": StasisEnd,
    "ChannelStateChange": ChannelStateChange,
}


def parse_event(data: dict[str, Any]) -> Event:
    """Turn one websocket message into a typed event (unknown types stay plain `Event`)."""
    kind = data.get("type", "")
    channel_json = data.get("channel")
    match kind:
        case "StasisStart":
            replace = data.get("replace_channel") or {}
            return StasisStart(
                kind,
                data,
                Channel.from_json(channel_json or {}),
                list(data.get("args") or []),
                replace.get("id"),
            )
        case "ChannelDtmfReceived":
            return ChannelDtmfReceived(
                kind,
                data,
                Channel.from_json(channel_json or {}),
                data.get("digit", ""),
                int(data.get("duration_ms") or 0),
            )
        case "ChannelHangupRequest":
            return ChannelHangupRequest(
                kind, data, Channel.from_json(channel_json or {}), int(data.get("cause") or 0)
            )
        case "ChannelDestroyed":
            return ChannelDestroyed(
                kind,
                data,
                Channel.from_json(channel_json or {}),
                int(data.get("cause") or 0),
                data.get("cause_txt", ""),
            )
        case "ChannelEnteredBridge" | "ChannelLeftBridge":
            cls = ChannelEnteredBridge if kind == "ChannelEnteredBridge" else ChannelLeftBridge
            return cls(
                kind,
                data,
                Channel.from_json(channel_json or {}),
                (data.get("bridge") or {}).get("id", ""),
            )
        case "Dial":
            caller = data.get("caller")
            return Dial(
                kind,
                data,
                Channel.from_json(data.get("peer") or {}),
                caller.get("id") if caller else None,
                data.get("dialstatus", ""),
            )
        case "PlaybackStarted" | "PlaybackFinished" | "PlaybackContinuing":
            playback = data.get("playback") or {}
            pcls = PlaybackStarted if kind == "PlaybackStarted" else PlaybackFinished
            if kind == "PlaybackContinuing":
                return Event(kind, data)
            return pcls(
                kind,
                data,
                playback.get("id", ""),
                playback.get("target_uri", ""),
                playback.get("media_uri", ""),
                playback.get("state", ""),
            )
        case "RecordingStarted" | "RecordingFinished" | "RecordingFailed":
            rec = data.get("recording") or {}
            rcls = {
                "RecordingStarted": RecordingStarted,
                "RecordingFinished": RecordingFinished,
                "RecordingFailed": RecordingFailed,
            }[kind]
            return rcls(
                kind,
                data,
                rec.get("name", ""),
                rec.get("target_uri", ""),
                rec.get("state", ""),
                rec.get("duration"),
                rec.get("cause"),
            )
        case "ChannelTransfer":
            return _channel_transfer(data)
        case "BridgeDestroyed":
            return BridgeDestroyed(kind, data, (data.get("bridge") or {}).get("id", ""))
        case "ApplicationReplaced":
            return ApplicationReplaced(kind, data, data.get("application", ""))
    if kind in _CHANNEL_EVENTS and channel_json is not None:
        return _CHANNEL_EVENTS[kind](kind, data, Channel.from_json(channel_json))
    return Event(kind, data)


def _channel_transfer(data: dict[str, Any]) -> ChannelTransfer:
    refer_to = data.get("refer_to") or {}
    wanted = refer_to.get("requested_destination") or {}
    source = (data.get("referred_by") or {}).get("source_channel") or {}
    return ChannelTransfer(
        "ChannelTransfer",
        data,
        Channel.from_json(source),
        data.get("state", ""),
        wanted.get("destination", ""),
        wanted.get("protocol_id", ""),
        (refer_to.get("destination_channel") or {}).get("id", ""),
        (refer_to.get("connected_channel") or {}).get("id", ""),
    )


def resource_ids(event: Event) -> tuple[str, ...]:
    """The ids an event can be routed by, most specific first: a playback or recording
    belongs to whoever started it; otherwise the channel or bridge owner gets it."""
    match event:
        case PlaybackEvent(playback_id=pid, target_uri=target):
            return (pid, _target_id(target))
        case RecordingEvent(name=name, target_uri=target):
            return (recording_key(name), _target_id(target))
        case Dial(peer=peer, caller_id=caller_id):
            return (peer.id, caller_id or "")
        case (
            ChannelEnteredBridge(channel=ch, bridge_id=bid)
            | ChannelLeftBridge(channel=ch, bridge_id=bid)
        ):
            return (ch.id, bid)
        case ChannelEvent(channel=ch):
            return (ch.id,)
        case BridgeDestroyed(bridge_id=bid):
            return (bid,)
    return ()


def _target_id(target_uri: str) -> str:
    # "channel:<id>" / "bridge:<id>" -> "<id>"
    return target_uri.split(":", 1)[1] if ":" in target_uri else target_uri
