"""ARI connection loss and shutdown on the real Asterisk (issue 2)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import aiohttp
import pytest

from asterisk_bridge.ari.events import Event, StasisStart
from asterisk_bridge.store import open_store

from .conftest import REPO, install_dialplan, kill_ari_websockets, write_config
from .harness import Employee, Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_reconnects_after_ari_websocket_is_killed_and_serves_next_call(
    harness: Harness, numcfg
) -> None:
    app = await numcfg()
    assert app.stream.connections == 1
    assert await asyncio.to_thread(kill_ari_websockets, "numcfg") == 1
    await wait_until(lambda: app.stream.connections >= 2 and app.stream.connected, 20, "reconnect")
    leg = await harness.call("+33185000000")
    await harness.heard(leg, "sound:numcfg/en/welcome")
    await harness.ended(leg)
    calls = await calls_done(app)
    assert calls[0]["route"] == ["greeting", "hangup"]


async def test_reconnect_hangs_up_channels_left_without_owner(harness: Harness, numcfg) -> None:
    """A call that sat in Stasis with no owner (its events were lost while the websocket
    was down) is not left silent forever: reconciliation after reconnecting hangs it up."""
    app = await numcfg()
    real_handler = app.dispatcher.on_unrouted
    lost: list[str] = []

    def lose(event: Event) -> None:  # the StasisStart is "lost"
        if isinstance(event, StasisStart):
            lost.append(event.channel.id)

    app.dispatcher.on_unrouted = lose
    leg = await harness.call("+33185000000")
    await wait_until(lambda: leg.far_id in lost, 10, "the call's StasisStart")
    assert leg.far_id in (await app.client.application())["channel_ids"]
    app.dispatcher.on_unrouted = real_handler
    assert await asyncio.to_thread(kill_ari_websockets, "numcfg") == 1
    await harness.ended(leg, timeout=20)
    assert harness.media_heard(leg) == []


async def test_sigterm_lets_the_call_in_progress_finish(harness: Harness, tmp_path) -> None:
    harness.reset()
    config = write_config(tmp_path)
    install_dialplan(config)
    proc = await start_service(config)
    try:
        leg = await harness.call("+33185000000")
        await harness.heard(leg, "sound:numcfg/en/welcome")
        proc.send_signal(signal.SIGTERM)
        finished = await harness.wait_for(
            lambda e: (
                e.get("type") == "PlaybackFinished"
                and e["playback"]["target_uri"] == f"channel:{leg.far_id}"
            ),
            what="greeting to finish",
        )
        # The greeting played to its end: SIGTERM did not cut the call.
        assert finished["playback"]["state"] == "done"
        await harness.ended(leg)
        code = await asyncio.wait_for(proc.wait(), 20)
        assert code == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def start_service(config) -> asyncio.subprocess.Process:
    """`numcfg run` as its own process, once its /ready answers 200."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asterisk_bridge.cli",
        "run",
        "-c",
        str(config),
        cwd=REPO,
        env={**os.environ},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 20
        while True:
            try:
                async with http.get("http://127.0.0.1:18090/ready") as resp:
                    if resp.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, "numcfg run did not become ready"
            await asyncio.sleep(0.2)


async def test_sigkill_with_a_call_up_leaves_its_details_after_the_restart(
    harness: Harness, tmp_path
) -> None:
    """A numcfg killed mid-conversation: at the next start the conversation left in
    Stasis is cleaned up and the call has its details (answered, route ends with
    "interrupted")."""
    harness.reset()
    config = write_config(
        tmp_path,
        {
            "queues": {
                "sales": {
                    "members": ["anna"],
                    "ring_time": 10,
                    "max_wait": 30,
                    "fallback": {"action": "hangup"},
                }
            },
            "numbers": {"paris": {"routing": {"greeting": None, "queue": "sales"}}},
        },
    )
    install_dialplan(config)
    store_url = f"sqlite:///{tmp_path}/numcfg.sqlite3"
    store = open_store(store_url)
    store.people.set_workday("anna", "working")
    harness.employees["101"] = Employee("answer", answer_after=0.2)
    proc = await start_service(config)
    try:
        leg = await harness.call("+33185000000")
        await harness.bridged(leg, timeout=20)
        await asyncio.sleep(1.0)  # talking
        proc.kill()
        await proc.wait()
        proc = await start_service(config)
        await harness.ended(leg, timeout=20)  # the orphaned conversation is hung up
        calls = [c.to_json() for c in await asyncio.to_thread(store.calls.recent)]
        assert len(calls) == 1
        assert calls[0]["disposition"] == "answered"
        assert calls[0]["employee"] == "anna"
        assert calls[0]["route"] == ["queue:sales", "employee:anna", "interrupted"]
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
        store.close()
