"""Corrupt and hostile configs reloaded by SIGHUP into a real `numcfg run` with calls up
(issue 17's first finding: a 7-level alias bomb froze the event loop for 183 s).

A recorded conversation stays up the whole time. For each hostile file (an alias bomb, a
file over the size cap, random bytes, a text with NULs, nesting past any config, a
truncated file, an empty one, a valid YAML with a broken reference) the file is written and
numcfg gets SIGHUP; a new call placed at that moment hears its greeting at once and is
connected, `/ready` names the error, and the last good config keeps serving. A good file
afterwards is taken again. The process also warned at start that its config was
world-readable, and its store is private. Then issue 17's checks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from asterisk_bridge.store import open_store
from tests.integration.conftest import install_dialplan, start_service, write_config
from tests.integration.harness import CallerLeg, Employee, Harness

from .checks import assert_after_service, with_check
from .figures import FIGURES

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

EMPLOYEES = {"anna": "101", "boris": "102", "chloe": "103"}
PARIS = "+33185000000"
TALK = "+33185000041"
WELCOME = "sound:numcfg/en/welcome"
READY = "http://127.0.0.1:18090/ready"
# A call placed during a hostile reload hears its greeting within this (it was 183 s).
GREETING_WITHIN_SECONDS = 3.0


def good_config() -> dict:
    return {
        "queues": {
            "sales": {
                "members": ["boris", "chloe"],
                "ring_time": 10,
                "max_wait": 30,
                "fallback": {"action": "hangup"},
            },
            "long": {
                "members": ["anna"],
                "ring_time": 10,
                "max_wait": 30,
                "fallback": {"action": "hangup"},
            },
        },
        "numbers": {
            "paris": {"routing": {"greeting": WELCOME, "queue": "sales"}},
            "talk": {
                "number": TALK,
                "routing": {"greeting": None, "queue": "long"},
                "recording": {"record_all": True, "warning": False},
            },
        },
    }


def hostile_files(good: str) -> dict[str, tuple[bytes, str]]:
    """name: (the file's bytes, what /ready's config errors say about it)."""
    bomb = good + "x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    bomb += "".join(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 8))
    broken = yaml.safe_load(good)
    broken["numbers"]["paris"]["routing"]["queue"] = "sales2"
    return {
        "alias_bomb": (bomb.encode(), "expands to more than"),
        "huge": (good.encode() + b"#" * (5 * 1024 * 1024) + b"\n", "a config is at most"),
        "random_bytes": (random.Random(17).randbytes(8192), "cannot read"),
        "nul_bytes": (good.encode() + b"\x00" * 512, "not allowed in YAML"),
        "deep_nesting": (f"{good}x: {'[' * 20000}{']' * 20000}\n".encode(), "nested deeper"),
        "truncated": (good[: len(good) // 2 - 3].encode() + b'\n  "oops: [', "YAML syntax error"),
        "empty": (b"", "empty"),
        "broken_reference": (yaml.safe_dump(broken, sort_keys=False).encode(), "sales2"),
    }


async def ready() -> dict:
    async with aiohttp.ClientSession() as http, http.get(READY) as response:
        return await response.json()


async def wait_ready(predicate, what: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while not predicate(body := await ready()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {body}"
        await asyncio.sleep(0.1)
    return body


async def call_through(harness: Harness, test: str) -> float:
    """A call to paris: seconds until its greeting started; connected, then it ends."""
    started = time.monotonic()
    leg = await harness.call(PARIS)
    await harness.heard(leg, WELCOME)
    heard = time.monotonic() - started
    await harness.bridged(leg, timeout=20)
    await harness.ended(leg, timeout=20)
    return heard


async def test_hostile_configs_on_sighup_keep_calls_flowing_and_the_last_good_config(
    harness: Harness, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    test = request.node.name
    harness.reset()
    config = write_config(tmp_path, with_check(good_config()))
    good = config.read_text()
    install_dialplan(config)
    os.chmod(config, 0o644)  # world-readable: numcfg says so at start
    store = open_store(f"sqlite:///{tmp_path}/numcfg.sqlite3")
    for name in EMPLOYEES:
        store.people.set_workday(name, "working")
    harness.employees["101"] = Employee("answer", answer_after=0.2)  # talks until the end
    for ext in ("102", "103"):
        harness.employees[ext] = Employee("answer", answer_after=0.2, hangup_after=0.5)
    log = tmp_path / "numcfg.log"
    proc = await start_service(config, stderr=log)
    placed = 0
    try:
        assert "world-readable" in log.read_text(), log.read_text()[-2000:]
        os.chmod(config, 0o600)  # the file watcher may reload it: the same good config
        await asyncio.sleep(1.0)
        generation = (await ready())["config"]["generation"]
        conversation: CallerLeg = await harness.call(TALK)
        placed += 1
        await harness.bridged(conversation, timeout=20)

        for name, (data, says) in hostile_files(good).items():
            config.write_bytes(data)
            proc.send_signal(signal.SIGHUP)
            FIGURES.fault(test)
            heard = await call_through(harness, test)  # placed while numcfg reloads
            placed += 1
            assert heard < GREETING_WITHIN_SECONDS, f"{name}: greeting after {heard:.1f} s"
            body = await wait_ready(
                lambda b, says=says: any(says in e for e in b["config"]["errors"]),
                f"the {name} reload to fail",
            )
            assert body["config"]["generation"] == generation, name  # the last good one
            assert proc.returncode is None, f"numcfg died on {name}"

        # The conversation went on through every reload.
        bridge = await harness.bridge_of(conversation.far_id)
        assert bridge is not None and len(bridge["channels"]) == 2, "conversation lost"
        await harness.hangup(conversation)
        await harness.ended(conversation)
        # A good file is taken again, and calls go on with it.
        config.write_text(good)
        proc.send_signal(signal.SIGHUP)
        await wait_ready(lambda b: not b["config"]["reload_failed"], "the good reload")
        await call_through(harness, test)
        placed += 1

        await assert_after_service(store, harness, EMPLOYEES, test=test, placed=placed)
        store_file = tmp_path / "numcfg.sqlite3"
        assert store_file.stat().st_mode & 0o777 == 0o600, oct(store_file.stat().st_mode)
        for kept in (tmp_path / "recordings").rglob("*"):
            assert kept.stat().st_mode & 0o077 == 0, f"{kept} {oct(kept.stat().st_mode)}"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 20)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        store.close()
