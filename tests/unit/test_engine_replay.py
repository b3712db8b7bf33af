"""Replays of what numcfg's websocket received during real calls on the rig (panoramisk's
way: recorded traffic through the real protocol code). The log is captured by
`python -m tests.fakeari.capture` (three calls: an extension dialed during the greeting,
a queue call answered and recorded, a caller who hangs up during the greeting).

These prove numcfg reads Asterisk 22's own JSON, not the fake's idea of it: every event
parses to its typed class, every event is routed to the call that owns it, and the
per-call inbox sees each caller's digits and hangup."""

from __future__ import annotations

from pathlib import Path

import pytest

from asterisk_bridge.ari.events import (
    USED_EVENT_TYPES,
    ChannelDestroyed,
    Event,
    StasisStart,
    parse_event,
    resource_ids,
)
from asterisk_bridge.ari.inbox import Inbox, Kind
from asterisk_bridge.ari.router import EventRouter
from tests.fakeari.replay import load_event_log

LOG = Path(__file__).resolve().parents[1] / "fakeari" / "logs" / "rig_calls.jsonl"
# The ids numcfg chooses for what it creates (ari/inbox.new_id and the recorders).
OWN_PREFIXES = ("leg-", "pb-", "br-", "rec:numcfg-")


@pytest.fixture(scope="module")
def captured() -> list[dict]:
    return load_event_log(LOG)


def test_the_log_is_a_real_capture_of_three_calls(captured: list[dict]) -> None:
    starts = [e for e in captured if e["type"] == "StasisStart" and e["args"][:1] == ["inbound"]]
    assert len(starts) == 3
    assert all(e["application"] == "numcfg" and e.get("asterisk_id") for e in captured)


def test_every_event_parses_to_its_typed_class(captured: list[dict]) -> None:
    for data in captured:
        event = parse_event(data)
        assert data["type"] in USED_EVENT_TYPES, data["type"]  # the filter held
        assert type(event) is not Event, f"{data['type']} parsed as a plain Event"


def calls_of(events: list[Event]) -> dict[str, set[str]]:
    """Each inbound call's primary channel and the ids numcfg created for it. The calls of
    the capture ran one after another, so an id numcfg chose belongs to the call whose
    StasisStart came last before the id first showed (the engine knows it directly: it
    claimed the id before asking Asterisk to create the resource)."""
    calls: dict[str, set[str]] = {}
    current: set[str] = set()
    for event in events:
        if isinstance(event, StasisStart) and event.args[:1] == ["inbound"]:
            current = calls[event.channel.id] = {event.channel.id}
            continue
        for rid in resource_ids(event):
            own = rid.startswith(OWN_PREFIXES) and not rid.endswith(";2")
            if own and not any(rid in owned for owned in calls.values()):
                current.add(rid)
    return calls


def test_every_event_reaches_the_call_that_owns_it(captured: list[dict]) -> None:
    events = [parse_event(data) for data in captured]
    calls = calls_of(events)
    unrouted: list[Event] = []
    router = EventRouter(on_unrouted=unrouted.append)
    inboxes = {}
    for primary, owned in calls.items():
        inbox = Inbox(router, client=None, primary=primary)  # type: ignore[arg-type]
        for rid in owned - {primary}:
            kind = (
                Kind.RECORDING
                if rid.startswith("rec:")
                else Kind.BRIDGE
                if rid.startswith("br-")
                else Kind.PLAYBACK
                if rid.startswith("pb-")
                else Kind.CHANNEL
            )
            inbox.claim(rid, kind)
        inboxes[primary] = inbox
    for event in events:
        router.dispatch(event)
    # Left over: only the calls' own StasisStarts (the dispatcher's business) and the far
    # halves (";2") of the Local legs, which the app is subscribed to but no call needs.
    stray = [
        e
        for e in unrouted
        if not (isinstance(e, StasisStart) and e.channel.id in calls)
        and not all(rid.endswith(";2") for rid in resource_ids(e) if rid)
    ]
    assert stray == []
    assert len(unrouted) < len(events)
    first, second, third = inboxes.values()
    assert all(inbox.hung_up for inbox in inboxes.values())
    assert first.take_digits() == "101#"
    assert second.take_digits() == third.take_digits() == ""
    # Each call's recording (the two answered ones) reached that call.
    assert [sorted(r for r in owned if r.startswith("rec:")) != [] for owned in calls.values()] == [
        True,
        True,
        False,
    ]


def test_the_leg_of_the_answered_queue_call_is_destroyed_last(captured: list[dict]) -> None:
    events = [parse_event(data) for data in captured]
    legs = [e.channel.id for e in events if isinstance(e, StasisStart) and e.args == ["leg"]]
    assert legs, "the capture holds answered employee legs"
    destroyed = [e.channel.id for e in events if isinstance(e, ChannelDestroyed)]
    assert set(legs) <= set(destroyed)
