"""parse_event, resource_ids and EventRouter (asterisk_bridge/ari/events.py, router.py).

Events are built in ARI's real JSON shape (tests/fakeari/model.py, and the recorded call
in tests/fakeari/logs/), so a field numcfg reads under the wrong name shows up here.
"""

from __future__ import annotations

from typing import Any

import pytest

from asterisk_bridge.ari.events import (
    ApplicationReplaced,
    BridgeDestroyed,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelEnteredBridge,
    ChannelHangupRequest,
    ChannelLeftBridge,
    ChannelStateChange,
    Dial,
    Event,
    PlaybackFinished,
    PlaybackStarted,
    RecordingFailed,
    RecordingFinished,
    RecordingStarted,
    StasisEnd,
    StasisStart,
    parse_event,
    resource_ids,
)
from asterisk_bridge.ari.router import EventRouter
from tests.fakeari import LOGS, channel_json, event, load_event_log

CALL_LOG = LOGS / "inbound_greeting_hangup.jsonl"


def playback(kind: str, pid: str = "p1", target: str = "channel:c1", **extra: Any) -> Event:
    body = {"id": pid, "media_uri": "sound:hello", "target_uri": target, "state": "playing"}
    return parse_event(event(kind, playback={**body, **extra}))


def recording(kind: str, name: str = "vm-1", target: str = "channel:c1", **extra: Any) -> Event:
    body = {"name": name, "format": "wav", "target_uri": target, "state": "recording"}
    return parse_event(event(kind, recording={**body, **extra}))


# -- parse_event -------------------------------------------------------------------------
def test_stasis_start_carries_channel_args_and_replaced_channel() -> None:
    parsed = parse_event(
        event(
            "StasisStart",
            args=["inbound", "0100000000"],
            channel=channel_json(
                "c1",
                state="Ring",
                caller_number="+33612345678",
                caller_name="Jean",
                exten="0100000000",
                context="from-trunk",
                channelvars={"TO_HDR": "<sip:0100000000@192.0.2.10>"},
            ),
            replace_channel=channel_json("old"),
        )
    )
    assert isinstance(parsed, StasisStart)
    assert parsed.args == ["inbound", "0100000000"]
    assert parsed.replace_channel_id == "old"
    ch = parsed.channel
    assert (ch.id, ch.state, ch.caller_number, ch.caller_name) == (
        "c1",
        "Ring",
        "+33612345678",
        "Jean",
    )
    assert (ch.exten, ch.context) == ("0100000000", "from-trunk")
    assert ch.channelvars == {"TO_HDR": "<sip:0100000000@192.0.2.10>"}


def test_stasis_start_without_args_or_replacement() -> None:
    parsed = parse_event(event("StasisStart", args=[], channel=channel_json("c1")))
    assert isinstance(parsed, StasisStart)
    assert (parsed.args, parsed.replace_channel_id) == ([], None)
    assert parsed.channel.channelvars == {}


def test_stasis_end_and_state_change_are_channel_events() -> None:
    end = parse_event(event("StasisEnd", channel=channel_json("c1")))
    change = parse_event(event("ChannelStateChange", channel=channel_json("c1", state="Up")))
    assert isinstance(end, StasisEnd) and end.channel.id == "c1"
    assert isinstance(change, ChannelStateChange) and change.channel.state == "Up"


def test_channel_event_without_channel_stays_plain() -> None:
    parsed = parse_event(event("ChannelStateChange"))
    assert type(parsed) is Event


def test_dtmf_carries_digit_and_duration() -> None:
    parsed = parse_event(
        event("ChannelDtmfReceived", digit="#", duration_ms=160, channel=channel_json("c1"))
    )
    assert isinstance(parsed, ChannelDtmfReceived)
    assert (parsed.digit, parsed.duration_ms, parsed.channel.id) == ("#", 160, "c1")


def test_hangup_request_and_destroyed_carry_causes() -> None:
    request = parse_event(event("ChannelHangupRequest", cause=17, channel=channel_json("c1")))
    destroyed = parse_event(
        event("ChannelDestroyed", cause=19, cause_txt="No answer", channel=channel_json("c1"))
    )
    assert isinstance(request, ChannelHangupRequest) and request.cause == 17
    assert isinstance(destroyed, ChannelDestroyed)
    assert (destroyed.cause, destroyed.cause_txt) == (19, "No answer")


def test_soft_hangup_request_without_cause_is_zero() -> None:
    parsed = parse_event(event("ChannelHangupRequest", soft=True, channel=channel_json("c1")))
    assert isinstance(parsed, ChannelHangupRequest) and parsed.cause == 0


def test_entered_and_left_bridge_carry_bridge_id() -> None:
    bridge = {"id": "b1", "technology": "simple_bridge", "bridge_type": "mixing"}
    entered = parse_event(event("ChannelEnteredBridge", bridge=bridge, channel=channel_json("c1")))
    left = parse_event(event("ChannelLeftBridge", bridge=bridge, channel=channel_json("c1")))
    assert isinstance(entered, ChannelEnteredBridge) and entered.bridge_id == "b1"
    assert isinstance(left, ChannelLeftBridge) and left.bridge_id == "b1"


def test_dial_carries_peer_caller_and_status() -> None:
    parsed = parse_event(
        event(
            "Dial",
            dialstatus="BUSY",
            dialstring="101",
            forward="",
            peer=channel_json("leg-1"),
            caller=channel_json("c1"),
        )
    )
    assert isinstance(parsed, Dial)
    assert (parsed.peer.id, parsed.caller_id, parsed.dialstatus) == ("leg-1", "c1", "BUSY")


def test_dial_without_caller_has_none() -> None:
    parsed = parse_event(event("Dial", dialstatus="RINGING", peer=channel_json("leg-1")))
    assert isinstance(parsed, Dial) and parsed.caller_id is None


@pytest.mark.parametrize(
    ("kind", "cls"), [("PlaybackStarted", PlaybackStarted), ("PlaybackFinished", PlaybackFinished)]
)
def test_playback_events_carry_id_target_media_and_state(kind: str, cls: type) -> None:
    parsed = playback(kind, state="done")
    assert isinstance(parsed, cls)
    assert (parsed.playback_id, parsed.target_uri, parsed.media_uri, parsed.state) == (
        "p1",
        "channel:c1",
        "sound:hello",
        "done",
    )


def test_playback_continuing_is_not_a_playback_finished() -> None:
    parsed = playback("PlaybackContinuing")
    assert type(parsed) is Event


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        ("RecordingStarted", RecordingStarted),
        ("RecordingFinished", RecordingFinished),
        ("RecordingFailed", RecordingFailed),
    ],
)
def test_recording_events_carry_name_target_state_duration_cause(kind: str, cls: type) -> None:
    parsed = recording(kind, state="failed", duration=12, cause="Unable to open file")
    assert isinstance(parsed, cls)
    assert (parsed.name, parsed.target_uri, parsed.state) == ("vm-1", "channel:c1", "failed")
    assert (parsed.duration, parsed.cause) == (12, "Unable to open file")


def test_recording_started_has_no_duration_yet() -> None:
    parsed = recording("RecordingStarted")
    assert isinstance(parsed, RecordingStarted)
    assert (parsed.duration, parsed.cause) == (None, None)


def test_bridge_destroyed_and_application_replaced() -> None:
    destroyed = parse_event(event("BridgeDestroyed", bridge={"id": "b1"}))
    replaced = parse_event(event("ApplicationReplaced", app="numcfg"))
    assert isinstance(destroyed, BridgeDestroyed) and destroyed.bridge_id == "b1"
    assert isinstance(replaced, ApplicationReplaced) and replaced.application == "numcfg"


def test_unknown_event_stays_plain_with_raw_kept() -> None:
    raw = event("ChannelVarset", variable="X", value="1", channel=channel_json("c1"))
    parsed = parse_event(raw)
    assert type(parsed) is Event
    assert (parsed.type, parsed.raw) == ("ChannelVarset", raw)


# -- resource_ids ------------------------------------------------------------------------
def test_playback_routes_by_playback_id_first_then_target() -> None:
    assert resource_ids(playback("PlaybackStarted")) == ("p1", "c1")
    assert resource_ids(playback("PlaybackFinished", target="bridge:b1")) == ("p1", "b1")


def test_recording_routes_by_rec_name_first_then_target() -> None:
    assert resource_ids(recording("RecordingFinished")) == ("rec:vm-1", "c1")
    assert resource_ids(recording("RecordingStarted", target="bridge:b1")) == ("rec:vm-1", "b1")


def test_dial_routes_by_peer_then_caller() -> None:
    dial = parse_event(event("Dial", peer=channel_json("leg-1"), caller=channel_json("c1")))
    no_caller = parse_event(event("Dial", peer=channel_json("leg-1")))
    assert resource_ids(dial) == ("leg-1", "c1")
    assert resource_ids(no_caller) == ("leg-1", "")


def test_bridge_membership_routes_by_channel_then_bridge() -> None:
    entered = parse_event(
        event("ChannelEnteredBridge", bridge={"id": "b1"}, channel=channel_json("c1"))
    )
    assert resource_ids(entered) == ("c1", "b1")


def test_channel_events_route_by_channel_and_bridge_events_by_bridge() -> None:
    assert resource_ids(parse_event(event("StasisEnd", channel=channel_json("c1")))) == ("c1",)
    assert resource_ids(parse_event(event("BridgeDestroyed", bridge={"id": "b1"}))) == ("b1",)


def test_unknown_events_have_no_route() -> None:
    assert resource_ids(parse_event(event("ChannelVarset"))) == ()


# -- router ------------------------------------------------------------------------------
class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def deliver(self, event: Event) -> None:
        self.events.append(event)


def test_router_gives_a_playback_event_to_the_playback_owner_before_the_channel() -> None:
    unrouted: list[Event] = []
    router = EventRouter(on_unrouted=unrouted.append)
    call, player = Sink(), Sink()
    router.claim("c1", call)
    router.claim("p1", player)
    router.dispatch(playback("PlaybackStarted"))
    assert (len(player.events), len(call.events), unrouted) == (1, 0, [])


def test_router_falls_back_to_the_target_owner() -> None:
    router = EventRouter(on_unrouted=lambda e: None)
    call = Sink()
    router.claim("c1", call)
    router.dispatch(playback("PlaybackFinished"))
    assert len(call.events) == 1


def test_router_sends_unclaimed_events_to_on_unrouted() -> None:
    unrouted: list[Event] = []
    router = EventRouter(on_unrouted=unrouted.append)
    router.dispatch(parse_event(event("StasisStart", args=["inbound"], channel=channel_json("n"))))
    router.dispatch(parse_event(event("ChannelVarset")))
    assert [e.type for e in unrouted] == ["StasisStart", "ChannelVarset"]


def test_release_only_by_the_owner() -> None:
    router = EventRouter(on_unrouted=lambda e: None)
    owner, other = Sink(), Sink()
    router.claim("c1", owner)
    router.release("c1", other)
    assert router.owner("c1") is owner
    router.release("c1", owner)
    assert router.owner("c1") is None and router.owned_ids() == set()


# -- the recorded call -------------------------------------------------------------------
def test_recorded_call_parses_to_the_expected_types_all_routed_to_its_channel() -> None:
    events = [parse_event(raw) for raw in load_event_log(CALL_LOG)]
    assert [type(e) for e in events] == [
        StasisStart,
        PlaybackStarted,
        PlaybackFinished,
        ChannelHangupRequest,
        StasisEnd,
        ChannelDestroyed,
    ]
    channel_id = events[0].channel.id  # type: ignore[attr-defined]
    assert all(channel_id in resource_ids(e) for e in events)
    assert events[0].args == ["inbound", "0100000000"]  # type: ignore[attr-defined]
    assert events[-1].cause_txt == "Normal Clearing"  # type: ignore[attr-defined]


def test_load_event_log_names_the_bad_line(tmp_path: Any) -> None:
    log = tmp_path / "bad.jsonl"
    log.write_text('{"type": "StasisEnd"}\n\n{oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:3"):
        load_event_log(log)
