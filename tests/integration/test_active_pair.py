"""Two numcfg processes on one Asterisk as an active pair (issue 16): `asterisk.partner_app`
makes the dialplan try the partner before the backup number, so killing one numcfg sends
the next calls to the other."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import pytest

from asterisk_bridge.app import App
from asterisk_bridge.store import open_store

from .conftest import install_dialplan, write_config
from .harness import Employee, Harness
from .test_resilience import start_service

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PAIR = {
    "queues": {
        "sales": {
            "members": ["anna", "boris"],
            "distribution": "evenly",
            "ring_time": 5,
            "max_wait": 20,
            "fallback": {"action": "hangup"},
        }
    },
    "numbers": {
        "paris": {"number": "+33185000000", "routing": {"greeting": None, "queue": "sales"}}
    },
}
CALLS = 20
KILL_AFTER = 8


async def app_gone(harness: Harness, app: str, timeout: float = 10.0) -> None:
    """Wait until Asterisk no longer lists `app` (it has read its websocket's end)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while app in {a["name"] for a in await harness.client.request("GET", "/applications")}:
        assert loop.time() < deadline, f"{app} still registered {timeout}s after its death"
        await asyncio.sleep(0.05)


def answered_by(node: App) -> float:
    """Calls the node finished as answered (its numcfg_calls_total)."""
    registry = node.services.metrics.registry
    return registry.get_sample_value("numcfg_calls_total", {"disposition": "answered"}) or 0.0


async def test_killing_one_numcfg_of_the_pair_sends_the_next_calls_to_the_other(
    harness: Harness, pg_db_url: str, tmp_path: Path
) -> None:
    harness.reset()
    a_config = write_config(
        tmp_path, {**PAIR, "store": pg_db_url, "asterisk": {"partner_app": "numcfg-b"}}
    )
    install_dialplan(a_config)  # numcfg first, then numcfg-b, then the backup number
    b_folder = tmp_path / "node-b"
    b_folder.mkdir()
    b_config = write_config(
        b_folder,
        {
            **PAIR,
            "store": pg_db_url,
            "asterisk": {"app": "numcfg-b", "partner_app": "numcfg"},
            "api": {"listen": "127.0.0.1:18092"},
        },
    )
    store = open_store(pg_db_url)
    for name in ("anna", "boris"):
        store.people.set_workday(name, "working")
    for ext in ("101", "102"):
        harness.employees[ext] = Employee("answer", answer_after=0.2, hangup_after=0.5)
    node_a = await start_service(a_config)
    node_b = App(b_config)
    await node_b.start()
    assert await node_b.stream.wait_connected(10)
    try:
        legs = []
        for i in range(CALLS):
            if i == KILL_AFTER:
                node_a.kill()  # SIGKILL: no drain, no goodbye to Asterisk
                await node_a.wait()
                # Asterisk unregisters the app once it reads the closed websocket; a call
                # placed before that enters the dead app (a documented window: such a
                # call waits for node A to come back).
                await app_gone(harness, "numcfg")
            leg = await harness.call("+33185000000", caller=f"+336110000{i:02d}")
            legs.append(leg)
            await harness.ended(leg, timeout=20)
        # Every call was taken by a numcfg: none reached the backup number.
        assert harness.trunk_reached == []
        pending = list(node_b.services.active.values())
        if pending:  # the last call's record is saved just after its caller is gone
            await asyncio.wait(pending, timeout=10)
        assert answered_by(node_b) == CALLS - KILL_AFTER  # every call after the kill
        bridged = {
            e["channel"]["id"] for e in harness.events if e.get("type") == "ChannelEnteredBridge"
        }
        assert all(leg.far_id in bridged for leg in legs), "a caller was never connected"
        # The killed node's last call may still have been in its journal queue: its
        # details are in the store's journal of open calls, closed when node A is back
        # (as systemd's Restart= would bring it back).
        node_a = await start_service(a_config)
        await asyncio.sleep(2.0)
        calls = [c.to_json() for c in await asyncio.to_thread(store.calls.recent)]
        assert sorted(c["caller"] for c in calls) == sorted(
            f"+336110000{i:02d}" for i in range(CALLS)
        )
        assert {c["disposition"] for c in calls} == {"answered"}
    finally:
        if node_a.returncode is None:
            node_a.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(node_a.wait(), 20)
        await node_b.drain(timeout=10)
        await node_b.stop()
        store.close()
