"""Outbound calls by prefix and the number lifecycle on the real rig."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from .harness import Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

OUTBOUND = {
    "numbers": {
        "paris": {
            "number": "+33185000000",
            "outbound": {"selectable": True, "prefix": "*123*", "allowed_employees": ["anna"]},
        }
    }
}


async def test_prefix_picks_the_number_shown_to_the_client(harness: Harness, numcfg) -> None:
    app = await numcfg(OUTBOUND)
    # anna's phone (caller ID 101) dials *123* then a national number.
    leg = await harness.call("*123*0612345678", context="numcfg-phones", caller="101")
    trunk = await harness.trunk_rung("+33612345678")
    assert trunk["channel"]["caller"]["number"] == "+33185000000"
    await harness.wait_for(
        lambda e: e.get("type") == "ChannelEnteredBridge" and e["channel"]["id"].startswith("leg-"),
        what="the client to be bridged with anna",
    )
    await harness.hangup(leg)
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["direction"] == "outgoing"
    assert call["number"] == "paris"
    assert call["employee"] == "anna"
    assert call["callee"] == "+33612345678"
    assert call["route"] == ["employee:anna", "forward:+33612345678"]


async def test_employee_not_allowed_on_the_number_cannot_call_out(harness: Harness, numcfg) -> None:
    app = await numcfg(OUTBOUND)
    leg = await harness.call("*123*0612345678", context="numcfg-phones", caller="102")
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert harness.trunk_reached == []
    assert call["disposition"] == "failed"


async def test_disconnected_number_is_not_in_service(harness: Harness, numcfg) -> None:
    app = await numcfg()
    long_ago = datetime.now(UTC) - timedelta(days=2)
    await asyncio.to_thread(
        app.store.numbers.set_state,
        "paris",
        "pending_disconnect",
        undo_token="t",
        changed_at=long_ago,
    )
    leg = await harness.call("+33185000000")
    await harness.heard(leg, "sound:numcfg/en/not-in-service")
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["disposition"] == "failed"
    assert "sound:numcfg/en/welcome" not in harness.media_heard(leg)


async def test_pending_disconnect_still_takes_calls(harness: Harness, numcfg) -> None:
    app = await numcfg()
    await asyncio.to_thread(
        app.store.numbers.set_state,
        "paris",
        "pending_disconnect",
        undo_token="t",
        changed_at=datetime.now(UTC),
    )
    leg = await harness.call("+33185000000")
    await harness.heard(leg, "sound:numcfg/en/welcome")
    await harness.ended(leg)
    await calls_done(app)
