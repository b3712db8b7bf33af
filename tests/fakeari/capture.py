"""Capture what numcfg's websocket receives during real calls on the rig, as JSON lines
for the replay tests (tests/unit/test_engine_replay.py).

    docker/rig up && .venv/bin/python -m tests.fakeari.capture tests/fakeari/logs/rig_calls.jsonl

Runs numcfg in-process on a small config (greeting, extension dialing, a queue with one
answering employee and recording), places three calls through the test harness: one that
dials an extension, one answered in the queue and recorded, one abandoned during the
greeting, and writes every event numcfg's router was given, as Asterisk sent it.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from asterisk_bridge.app import App
from asterisk_bridge.ari.client import AriClient
from asterisk_bridge.ari.events import Event
from tests.integration.conftest import (
    ARI_PASSWORD,
    ARI_URL,
    ARI_USER,
    install_dialplan,
    write_config,
)
from tests.integration.harness import TEST_APP, Employee, Harness, calls_done

CONFIG: dict[str, Any] = {
    "queues": {
        "sales": {
            "members": ["anna"],
            "ring_time": 10,
            "max_wait": 30,
            "fallback": {"action": "hangup"},
        }
    },
    "numbers": {
        "paris": {
            "routing": {
                "greeting": "sound:numcfg/en/welcome",
                "extension_dialing": {"enabled": True, "ring_time": 10},
                "queue": "sales",
            },
            "recording": {"record_all": True, "warning": False},
        }
    },
}


async def capture() -> list[dict[str, Any]]:
    session = aiohttp.ClientSession()
    client = AriClient(base_url=ARI_URL, username=ARI_USER, password=ARI_PASSWORD, app=TEST_APP)
    harness = Harness(
        client=client,
        session=session,
        ws_url=f"ws://127.0.0.1:8088/ari/events?app={TEST_APP}&subscribeAll=true",
    )
    await harness.start()
    seen: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), CONFIG)
        install_dialplan(config)
        app = App(config)
        route = app.router.dispatch

        def recording_dispatch(event: Event) -> None:
            seen.append(event.raw)
            route(event)

        app.router.dispatch = recording_dispatch  # type: ignore[method-assign]
        async with app:
            assert await app.stream.wait_connected(10)
            await asyncio.to_thread(app.store.people.set_workday, "anna", "working")
            harness.employees["101"] = Employee("answer", answer_after=0.3, hangup_after=1.5)
            leg = await harness.call("+33185000000")  # dials 101 during the greeting
            await harness.heard(leg, "sound:numcfg/en/welcome")
            await harness.press(leg, "101#")
            await harness.ended(leg, timeout=30)
            leg = await harness.call("+33185000000")  # waits for the queue, answered
            await harness.ended(leg, timeout=40)
            leg = await harness.call("+33185000000")  # hangs up during the greeting
            await harness.heard(leg, "sound:numcfg/en/welcome")
            await harness.hangup(leg)
            await harness.ended(leg)
            await calls_done(app)
            await app.drain(timeout=10)
    await harness.stop()
    await client.close()
    await session.close()
    return seen


def write_log(target: Path, events: list[dict[str, Any]]) -> None:
    target.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fakeari/logs/rig_calls.jsonl")
    captured = asyncio.run(capture())
    write_log(out, captured)
    print(f"{len(captured)} events written to {out}")
