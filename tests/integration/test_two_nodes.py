"""Two numcfg nodes sharing one PostgreSQL store (SPEC section 1): an employee is never
rung by both at once, and a workday set on one is seen by the other."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from asterisk_bridge.app import App

from .conftest import write_config
from .harness import Employee, Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

SHARED = {
    "queues": {
        "sales": {"members": ["anna"], "distribution": "in_order", "ring_time": 4, "max_wait": 20}
    },
    "numbers": {
        "paris": {"number": "+33185000000", "routing": {"greeting": None, "queue": "sales"}}
    },
}


async def start_node_b(folder: Path, store: str) -> App:
    """A second node: its own config file and ARI app name (numcfg-b, reached through
    the rig's numcfg-test-node-b context), the same PostgreSQL store."""
    await asyncio.to_thread(folder.mkdir)
    path = write_config(
        folder,
        {
            **SHARED,
            "store": store,
            "asterisk": {"app": "numcfg-b"},
            "api": {"listen": "127.0.0.1:18092"},
        },
    )
    node = App(path)
    await node.start()
    assert await node.stream.wait_connected(10)
    return node


async def test_an_employee_is_never_rung_by_two_nodes_at_once(
    harness: Harness, numcfg, pg_db_url: str, tmp_path: Path
) -> None:
    node_a = await numcfg({**SHARED, "store": pg_db_url})
    node_b = await start_node_b(tmp_path / "node-b", pg_db_url)
    try:
        await both_nodes_share_anna(harness, node_a, node_b)
    finally:
        await node_b.drain(timeout=10)
        await node_b.stop()


async def both_nodes_share_anna(harness: Harness, node_a: App, node_b: App) -> None:
    await asyncio.to_thread(node_a.store.people.set_workday, "anna", "working")  # seen by node b
    harness.employees["101"] = Employee("answer", answer_after=1.0, hangup_after=2.0)
    first = await harness.call("+33185000000", caller="+33611000001")  # node a
    await harness.employee_rung("101")
    second = await harness.call("paris", context="numcfg-test-node-b", caller="+33611000002")
    await harness.ended(first, timeout=30)
    await harness.ended(second, timeout=30)
    await calls_done(node_a)
    calls = {c["caller"]: c for c in await calls_done(node_b)}  # one shared store
    assert len(calls) == 2
    a, b = calls["+33611000001"], calls["+33611000002"]
    assert a["employee"] == b["employee"] == "anna"
    # anna's second leg started only after her first one was gone: never two at once.
    starts = [
        e["_t"]
        for e in harness.events
        if e.get("type") == "StasisStart" and e.get("args") == ["employee", "101"]
    ]
    gone = [
        e["_t"]
        for e in harness.events
        if e.get("type") == "ChannelDestroyed"
        and e["channel"]["id"] in harness.employee_channels["101"]
    ]
    assert len(starts) == 2
    assert starts[1] > min(gone)
    assert b["answered_at"] > a["ended_at"]
