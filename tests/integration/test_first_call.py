"""First call end to end on the real Asterisk (issue 2)."""

from __future__ import annotations

import pytest

from .harness import Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_incoming_call_hears_the_greeting_then_is_hung_up(harness: Harness, numcfg) -> None:
    app = await numcfg()
    leg = await harness.call("+33185000000")
    await harness.heard(leg, "sound:numcfg/en/welcome")
    await harness.ended(leg)
    # numcfg answered before playing and hung up after the greeting finished.
    finished = await harness.wait_for(
        lambda e: (
            e.get("type") == "PlaybackFinished"
            and e["playback"]["target_uri"] == f"channel:{leg.far_id}"
        )
    )
    assert finished["playback"]["state"] == "done"
    calls = await calls_done(app)
    assert calls[0]["number"] == "paris"
    assert calls[0]["route"] == ["greeting", "hangup"]


async def test_unknown_number_hears_not_in_service(harness: Harness, numcfg) -> None:
    app = await numcfg()
    leg = await harness.call("nosuchnumber", context="numcfg-test-direct")
    await harness.heard(leg, "sound:numcfg/en/not-in-service")
    await harness.ended(leg)
    calls = await calls_done(app)
    assert calls[0]["disposition"] == "failed"
    assert "sound:numcfg/en/welcome" not in harness.media_heard(leg)


@pytest.mark.parametrize("delivered", ["33185000000", "0185000000"])
async def test_a_number_the_trunk_sends_without_plus_or_nationally_reaches_it(
    harness: Harness, numcfg, delivered: str
) -> None:
    app = await numcfg()
    leg = await harness.call(delivered)
    await harness.heard(leg, "sound:numcfg/en/welcome")
    await harness.ended(leg)
    calls = await calls_done(app)
    assert calls[0]["number"] == "paris"
