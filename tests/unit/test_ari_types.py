"""ARI's vocabularies as types (ari/types.py, re-exported by ari/events.py) and the typed
AriClient values: tables of what Asterisk sends and what numcfg makes of it."""

from __future__ import annotations

from typing import Any

import pytest

from asterisk_bridge.ari.client import (
    AppSnapshot,
    AriClient,
    ChannelInfo,
    LiveRecording,
    RecordOptions,
)
from asterisk_bridge.ari.errors import AriNotFound
from asterisk_bridge.ari.events import (
    USED_EVENT_TYPES,
    ChannelState,
    DialStatus,
    HangupKind,
    dial_kind,
    hangup_kind,
    parse_event,
    recording_key,
    recording_name,
    resource_ids,
)


@pytest.mark.parametrize(
    ("cause", "kind"),
    [
        (16, HangupKind.NORMAL),  # NORMAL_CLEARING
        (31, HangupKind.NORMAL),  # NORMAL_UNSPECIFIED
        (0, HangupKind.NORMAL),  # no cause recorded
        (26, HangupKind.NORMAL),  # answered elsewhere
        (17, HangupKind.BUSY),  # USER_BUSY
        (21, HangupKind.BUSY),  # CALL_REJECTED: declined counts as busy
        (18, HangupKind.NO_ANSWER),  # NO_USER_RESPONSE
        (19, HangupKind.NO_ANSWER),  # NO_ANSWER
        (1, HangupKind.UNAVAILABLE),  # UNALLOCATED
        (3, HangupKind.UNAVAILABLE),  # NO_ROUTE_DESTINATION
        (20, HangupKind.UNAVAILABLE),  # SUBSCRIBER_ABSENT
        (27, HangupKind.UNAVAILABLE),  # DESTINATION_OUT_OF_ORDER
        (34, HangupKind.UNAVAILABLE),  # congestion is not busy
        (38, HangupKind.UNAVAILABLE),  # NETWORK_OUT_OF_ORDER
        (41, HangupKind.UNAVAILABLE),
        (58, HangupKind.UNAVAILABLE),  # no common codec
        (127, HangupKind.UNAVAILABLE),  # INTERWORKING
        (99, HangupKind.UNAVAILABLE),  # unlisted: not reachable
    ],
)
def test_hangup_kind_of_q850_causes(cause: int, kind: HangupKind) -> None:
    assert hangup_kind(cause) is kind


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("RINGING", DialStatus.RINGING),
        ("PROGRESS", DialStatus.PROGRESS),
        ("ANSWER", DialStatus.ANSWER),
        ("BUSY", DialStatus.BUSY),
        ("NOANSWER", DialStatus.NOANSWER),
        ("CANCEL", DialStatus.CANCEL),
        ("CHANUNAVAIL", DialStatus.CHANUNAVAIL),
        ("CONGESTION", DialStatus.CONGESTION),
        ("answer", DialStatus.ANSWER),
        (" BUSY ", DialStatus.BUSY),
        ("", DialStatus.UNKNOWN),  # the first Dial event of a dial
        (None, DialStatus.UNKNOWN),
        ("DONTCALL", DialStatus.UNKNOWN),
    ],
)
def test_dial_status_parse(text: str | None, status: DialStatus) -> None:
    assert DialStatus.parse(text) is status


def test_dial_status_still_equals_the_string_ari_sent() -> None:
    assert DialStatus.BUSY == "BUSY"
    assert "NOANSWER" in (DialStatus.NOANSWER, DialStatus.CANCEL)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (DialStatus.RINGING, None),
        (DialStatus.PROGRESS, None),
        (DialStatus.ANSWER, None),
        (DialStatus.UNKNOWN, None),
        (DialStatus.BUSY, HangupKind.BUSY),
        (DialStatus.NOANSWER, HangupKind.NO_ANSWER),
        (DialStatus.CANCEL, HangupKind.NO_ANSWER),
        (DialStatus.CHANUNAVAIL, HangupKind.UNAVAILABLE),
        (DialStatus.CONGESTION, HangupKind.UNAVAILABLE),
    ],
)
def test_dial_kind(status: DialStatus, kind: HangupKind | None) -> None:
    assert dial_kind(status) is kind


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("Up", ChannelState.UP),
        ("Ringing", ChannelState.RINGING),
        ("Ring", ChannelState.RING),
        ("Down", ChannelState.DOWN),
        ("Rsrvd", ChannelState.RSRVD),  # what Asterisk sends
        ("Rsrved", ChannelState.RSRVD),  # what channels.json documents
        ("Dialing Offhook", ChannelState.DIALING_OFFHOOK),
        ("Pre-ring", ChannelState.PRERING),
        ("", ChannelState.UNKNOWN),
        ("Sideways", ChannelState.UNKNOWN),
    ],
)
def test_channel_state_parse(text: str, state: ChannelState) -> None:
    assert ChannelState.parse(text) is state


def test_events_keep_strings_and_add_typed_properties() -> None:
    dial = parse_event(
        {"type": "Dial", "peer": {"id": "leg-1", "state": "Ringing"}, "dialstatus": "BUSY"}
    )
    assert dial.dialstatus == "BUSY"
    assert dial.status is DialStatus.BUSY
    assert dial.peer.state == "Ringing"
    assert dial.peer.channel_state is ChannelState.RINGING


@pytest.mark.parametrize(
    ("options", "params"),
    [
        (
            RecordOptions(name="vm-1"),
            {
                "name": "vm-1",
                "format": "wav",
                "maxDurationSeconds": 0,
                "maxSilenceSeconds": 0,
                "ifExists": "overwrite",
                "beep": False,
                "terminateOn": "none",
            },
        ),
        (
            RecordOptions(
                name="vm-2",
                format="gsm",
                max_duration_seconds=120,
                max_silence_seconds=5,
                if_exists="fail",
                beep=True,
                terminate_on="#",
            ),
            {
                "name": "vm-2",
                "format": "gsm",
                "maxDurationSeconds": 120,
                "maxSilenceSeconds": 5,
                "ifExists": "fail",
                "beep": True,
                "terminateOn": "#",
            },
        ),
    ],
)
def test_record_options_params(options: RecordOptions, params: dict[str, Any]) -> None:
    assert options.params() == params


@pytest.mark.parametrize(
    "bad",
    [
        {"name": ""},
        {"name": "r", "max_duration_seconds": -1},
        {"name": "r", "if_exists": "replace"},
        {"name": "r", "terminate_on": "5"},
    ],
)
def test_record_options_refuse_what_ari_would_refuse(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RecordOptions(**bad)


def test_recording_key_is_the_routing_key_of_recording_events() -> None:
    event = parse_event(
        {
            "type": "RecordingStarted",
            "recording": {"name": "vm-1", "target_uri": "channel:ch-1", "state": "recording"},
        }
    )
    assert recording_key("vm-1") == "rec:vm-1"
    assert resource_ids(event) == (recording_key("vm-1"), "ch-1")
    assert recording_name(recording_key("vm-1")) == "vm-1"
    assert recording_name("ch-1") is None


def test_event_filter_has_bridge_destroyed_but_not_bridge_membership() -> None:
    assert "BridgeDestroyed" in USED_EVENT_TYPES
    assert "ChannelEnteredBridge" not in USED_EVENT_TYPES
    assert "ChannelLeftBridge" not in USED_EVENT_TYPES


class ScriptedClient(AriClient):
    """An AriClient whose request() answers from a table instead of Asterisk."""

    def __init__(self, answers: dict[tuple[str, str], Any]) -> None:
        super().__init__(
            base_url="http://ari.invalid/ari", username="u", password="p", app="numcfg"
        )
        self.answers = answers
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        self.sent.append((method, path, dict(kwargs.get("params") or {})))
        answer = self.answers.get((method, path))
        if isinstance(answer, Exception):
            raise answer
        return answer


def _gone(path: str) -> AriNotFound:
    return AriNotFound(404, "not found", method="GET", path=path)


async def test_typed_client_reads() -> None:
    client = ScriptedClient(
        {
            ("GET", "/applications/numcfg"): {
                "name": "numcfg",
                "channel_ids": ["c1", "c2"],
                "bridge_ids": ["b1"],
                "endpoint_ids": [],
                "device_names": [],
            },
            ("GET", "/channels/c1"): {
                "id": "c1",
                "name": "PJSIP/101-00000001",
                "state": "Up",
                "dialplan": {
                    "context": "in",
                    "exten": "s",
                    "app_name": "Stasis",
                    "app_data": "numcfg,inbound",
                },
            },
            ("GET", "/recordings/live/vm-1"): {"name": "vm-1", "state": "recording"},
            ("GET", "/recordings/live/vm-2"): _gone("/recordings/live/vm-2"),
            ("GET", "/bridges/b1"): {"id": "b1"},
            ("GET", "/bridges/b2"): _gone("/bridges/b2"),
            ("GET", "/playbacks/p1"): _gone("/playbacks/p1"),
        }
    )
    assert await client.app_snapshot() == AppSnapshot(
        name="numcfg",
        channel_ids=frozenset({"c1", "c2"}),
        bridge_ids=frozenset({"b1"}),
        endpoint_ids=frozenset(),
        device_names=frozenset(),
    )
    assert await client.channel("c1") == ChannelInfo(
        id="c1",
        name="PJSIP/101-00000001",
        state=ChannelState.UP,
        app_name="Stasis",
        app_data="numcfg,inbound",
    )
    assert await client.live_recording("vm-1") == LiveRecording(name="vm-1", state="recording")
    assert await client.live_recording("vm-2") is None
    assert await client.bridge_exists("b1") is True
    assert await client.bridge_exists("b2") is False
    assert await client.playback_exists("p1") is False


async def test_typed_client_writes_send_the_ari_requests() -> None:
    client = ScriptedClient({("POST", "/channels/c1/record"): {"name": "vm-1", "state": "queued"}})
    recording = await client.record_channel_with("c1", RecordOptions(name="vm-1", beep=True))
    await client.record_bridge_with("b1", RecordOptions(name="talk-1"))
    await client.continue_in_dialplan("c1")
    await client.reload_module("res_musiconhold.so")
    await client.discard_live_recording("vm-1")
    assert recording == LiveRecording(name="vm-1", state="queued")
    assert [(method, path) for method, path, _ in client.sent] == [
        ("POST", "/channels/c1/record"),
        ("POST", "/bridges/b1/record"),
        ("POST", "/channels/c1/continue"),
        ("PUT", "/asterisk/modules/res_musiconhold.so"),
        ("DELETE", "/recordings/live/vm-1"),
    ]
    assert client.sent[0][2]["beep"] is True and client.sent[0][2]["ifExists"] == "overwrite"
