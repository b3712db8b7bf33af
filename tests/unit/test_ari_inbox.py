"""The per-call inbox (ari/inbox.py): subscriptions fan events out to the waits that asked,
nothing reaches the floor, the caller's hangup reaches every wait, and after a websocket
gap the lost endings are synthesised from what Asterisk says now (fake ARI)."""

from __future__ import annotations

import asyncio

from asterisk_bridge.ari.client import AriClient
from asterisk_bridge.ari.events import (
    BridgeDestroyed,
    ChannelDestroyed,
    ChannelDtmfReceived,
    PlaybackFinished,
    RecordingFailed,
    RecordingFinished,
    StasisStart,
    StreamResumed,
    parse_event,
)
from asterisk_bridge.ari.inbox import Inbox, Kind, made_by_new_id, new_id
from asterisk_bridge.ari.router import EventRouter
from tests.fakeari.server import FakeAri

pytest_plugins = ["tests.fakeari.fixtures"]

CALLER = "caller-1"


def event(kind: str, **fields: object) -> object:
    return parse_event({"type": kind, **fields})


def channel(cid: str) -> dict[str, object]:
    return {"id": cid, "name": f"PJSIP/{cid}", "state": "Up"}


def inbox_for(router: EventRouter, client: AriClient) -> Inbox:
    return Inbox(router, client, CALLER)


async def test_each_wait_gets_its_own_copy_of_a_matching_event(ari_client: AriClient) -> None:
    router = EventRouter(on_unrouted=lambda e: None)
    inbox = inbox_for(router, ari_client)
    inbox.claim("leg-1", Kind.CHANNEL)
    with inbox.watch("leg-1") as talk, inbox.watch("leg-1", types=(ChannelDestroyed,)) as end:
        router.dispatch(event("ChannelDestroyed", channel=channel("leg-1"), cause=16))
        assert isinstance(await talk.next(0.1), ChannelDestroyed)
        assert isinstance(await end.next(0.1), ChannelDestroyed)


async def test_an_event_no_wait_asked_for_reaches_the_base_handler(ari_client: AriClient) -> None:
    router = EventRouter(on_unrouted=lambda e: None)
    inbox = inbox_for(router, ari_client)
    with inbox.watch("leg-1", types=(ChannelDestroyed,)) as sub:
        router.dispatch(event("ChannelDtmfReceived", channel=channel(CALLER), digit="5"))
        assert await sub.next(0.05) is None
    assert inbox.unclaimed == 1
    assert inbox.take_digits() == "5"  # observed even though no wait took it


async def test_the_callers_hangup_wakes_every_wait(ari_client: AriClient) -> None:
    router = EventRouter(on_unrouted=lambda e: None)
    inbox = inbox_for(router, ari_client)
    with inbox.watch("pb-1") as playback, inbox.watch("rec:x") as recording:
        router.dispatch(event("StasisEnd", channel=channel(CALLER)))
        assert inbox.hung_up and inbox.gone.is_set()
        assert (await playback.next(0.1)) is not None
        assert (await recording.next(0.1)) is not None


async def test_after_a_gap_lost_endings_are_synthesised_and_live_things_are_left_alone(
    fake_ari: FakeAri, ari_client: AriClient
) -> None:
    fake_ari.add_channel(CALLER)  # still up
    ringing = fake_ari.add_channel("leg-up", in_stasis=False)  # ringing, not answered
    ringing["dialplan"] = {**ringing["dialplan"], "app_name": "", "app_data": ""}
    fake_ari.add_channel("leg-answered")  # answered in the gap: in our app now
    fake_ari.add_bridge("br-up")
    fake_ari.add_stored_recording("kept", b"RIFF")
    router = EventRouter(on_unrouted=lambda e: None)
    inbox = inbox_for(router, ari_client)
    for rid, kind in (
        ("leg-up", Kind.CHANNEL),
        ("leg-gone", Kind.CHANNEL),
        ("leg-answered", Kind.CHANNEL),
        ("br-up", Kind.BRIDGE),
        ("br-gone", Kind.BRIDGE),
        ("pb-gone", Kind.PLAYBACK),
        ("rec:kept", Kind.RECORDING),
        ("rec:lost", Kind.RECORDING),
    ):
        inbox.claim(rid, kind)
    seen: list[object] = []
    with inbox.watch(
        "leg-up", "leg-gone", "leg-answered", "br-up", "br-gone", "pb-gone", "rec:kept", "rec:lost"
    ) as everything:
        inbox.deliver(StreamResumed("StreamResumed", {}))
        async with asyncio.timeout(5):
            while len(seen) < 6:
                seen.append(await everything.next())
        assert await everything.next(0.2) is None  # nothing about what is still there
    kinds = {(type(e).__name__, getattr(e, "channel", None) and e.channel.id) for e in seen}
    assert ("ChannelDestroyed", "leg-gone") in kinds
    assert ("StasisStart", "leg-answered") in kinds
    assert any(isinstance(e, BridgeDestroyed) and e.bridge_id == "br-gone" for e in seen)
    assert any(isinstance(e, PlaybackFinished) and e.playback_id == "pb-gone" for e in seen)
    assert any(isinstance(e, RecordingFinished) and e.name == "kept" for e in seen)
    assert any(isinstance(e, RecordingFailed) and e.name == "lost" for e in seen)
    assert not inbox.hung_up  # the caller's channel is still up
    assert not any(isinstance(e, StasisStart) and e.channel.id == "leg-up" for e in seen)
    assert not any(isinstance(e, ChannelDtmfReceived) for e in seen)


def test_ids_numcfg_made_are_told_from_the_ones_asterisk_made() -> None:
    # Reconciliation hangs up unowned channels with numcfg's ids (legs it originated);
    # the far halves of Local legs carry Asterisk's ids and belong to someone else.
    assert made_by_new_id(new_id("leg")) and made_by_new_id(new_id("cb"))
    assert made_by_new_id("leg-0123456789ab-7")  # an earlier process's leg
    for other in ("1733071234.42", "far-0123456789ab", "caller-0123456789ab", "leg-xyz-1"):
        assert not made_by_new_id(other)
