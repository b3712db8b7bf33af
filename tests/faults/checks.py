"""What every fault test asserts afterwards (issue 17), in one place:

0 channels, 0 bridges, 0 stored recordings of the test's calls left in Asterisk's spool,
every call placed with its details, the active-calls gauge at 0, no employee claim left,
and every employee rung again by one more call. The counts go to the suite's figures
before the assertions, so a failing run still reports what it left behind."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

from asterisk_bridge.app import App
from asterisk_bridge.ari.errors import AriError
from asterisk_bridge.store import STORE_FAULTS, Store
from tests.integration.conftest import BASE_CONFIG, deep_merge
from tests.integration.harness import Employee, Harness

from .figures import FIGURES

# The number and queue that ring every employee at once, added to every fault config.
CHECK_NUMBER = "+33185000099"
CHECK_QUEUE = "everyone"


def with_check(config: dict[str, Any]) -> dict[str, Any]:
    """`config` plus a number whose queue rings every employee at once (all_at_once)."""
    merged = deep_merge(BASE_CONFIG, config)
    members = list(merged["employees"])
    queues = dict(config.get("queues", {}))
    queues[CHECK_QUEUE] = {
        "members": members,
        "distribution": "all_at_once",
        "ring_time": 10,
        "max_wait": 20,
        "fallback": {"action": "hangup"},
    }
    numbers = dict(config.get("numbers", {}))
    numbers["check"] = {"number": CHECK_NUMBER, "routing": {"greeting": None, "queue": CHECK_QUEUE}}
    return {**config, "queues": queues, "numbers": numbers}


def extensions(app: App) -> dict[str, str]:
    return {eid: e.extension for eid, e in app.config_holder.current.employees.items()}


async def all_working(app: App) -> None:
    """Every employee starts a workday (best effort: a store fault test may have broken
    the store, and numcfg then rings from the workdays it last read)."""
    for name in app.config_holder.current.employees:
        with contextlib.suppress(*STORE_FAULTS):
            await asyncio.to_thread(app.store.people.set_workday, name, "working")


async def saved_calls(app: App, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every call's details once numcfg has finished them all (newest first)."""
    pending = list(app.services.active.values())
    if pending:
        await asyncio.wait(pending, timeout=timeout)
    await app.journal.flush(timeout=timeout)
    calls = await asyncio.to_thread(app.store.calls.recent, limit=1000)
    return [call.to_json() for call in calls]


async def stored_recordings(harness: Harness) -> set[str]:
    return {r["name"] for r in await harness.client.request("GET", "/recordings/stored")}


async def spool_left(
    harness: Harness, calls: list[dict[str, Any]], timeout: float = 10.0
) -> list[str]:
    """The recordings and voicemail of `calls` still in Asterisk's spool after `timeout`
    (numcfg takes each once its recording has finished), then deleted for the next test."""
    ours = {f"numcfg-{kind}-{c['id']}" for c in calls for kind in ("rec", "vm")}
    deadline = time.monotonic() + timeout
    while True:
        left = sorted(await stored_recordings(harness) & ours)
        if not left or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    for name in left:  # clean for the next test, counted all the same
        with contextlib.suppress(AriError):
            await harness.client.delete_stored_recording(name)
    return left


async def leftovers(harness: Harness, timeout: float = 15.0) -> tuple[list[str], list[str]]:
    """Channels and bridges still in Asterisk after `timeout` (then hung up / destroyed,
    so the next test starts clean)."""
    deadline = time.monotonic() + timeout
    while True:
        channels = await harness.client.list_channels()
        bridges = await harness.client.list_bridges()
        if (not channels and not bridges) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    for channel in channels:
        with contextlib.suppress(AriError):
            await harness.client.hangup(channel["id"])
    for bridge in bridges:
        with contextlib.suppress(AriError):
            await harness.client.destroy_bridge(bridge["id"])
    return [c["name"] for c in channels], [b["id"] for b in bridges]


async def ring_everyone(app: App, harness: Harness, timeout: float = 20.0) -> set[str]:
    """One call to the check number: the extensions that rang (all at once)."""
    await all_working(app)
    return await ring_all(harness, extensions(app).values(), timeout=timeout)


async def ring_all(harness: Harness, exts: Iterable[str], timeout: float = 20.0) -> set[str]:
    """One call to the check number (every employee working): the extensions that rang."""
    for ext in exts:
        # Answers late enough for every phone to ring first; the first answer wins.
        harness.employees[ext] = Employee("answer", answer_after=1.5, hangup_after=0.2)
    mark = len(harness.events)
    leg = await harness.call(CHECK_NUMBER)
    await harness.ended(leg, timeout=timeout)
    return {
        e["args"][1]
        for e in harness.events[mark:]
        if e.get("type") == "StasisStart" and (e.get("args") or [None])[0] == "employee"
    }


async def assert_after_faults(
    app: App,
    harness: Harness,
    *,
    test: str,
    placed: int,
    ring_again: bool = True,
    details: bool = True,
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """The checks of issue 17 after a fault test that placed `placed` calls on `app`.
    Returns the call details (newest first, the ring-again call not included).

    `details=False`: the test knows the calls' details are not kept (an xfail test names
    the bug); they are counted apart in the figures, everything else is checked."""
    try:
        calls = await saved_calls(app, timeout=timeout)
    except STORE_FAULTS:
        if details:
            raise
        calls = []  # the store is the fault under test: nothing to read back
    channels, bridges = await leftovers(harness)
    spool = await spool_left(harness, calls)
    gauge = app.metrics.active._value.get()
    claims = await app.services.claims.busy()
    tasks = len(app.services.active)
    if details:
        FIGURES.calls(test, placed=placed, saved=len(calls))
    else:
        FIGURES.unchecked(test, placed)
    FIGURES.leftover(
        test, len(channels) + len(bridges) + len(spool) + len(claims) + tasks + int(gauge != 0)
    )
    if details:
        assert len(calls) == placed, f"{placed} calls placed, {len(calls)} with details"
    incomplete = [c for c in calls if not (c["disposition"] and c["ended_at"])]
    assert incomplete == [], f"calls without complete details: {incomplete}"
    assert channels == [], f"channels left: {channels}"
    assert bridges == [], f"bridges left: {bridges}"
    assert spool == [], f"recordings left in Asterisk's spool: {spool}"
    assert gauge == 0, f"active-calls gauge at {gauge}"
    assert claims == set(), f"employees still claimed: {claims}"
    assert tasks == 0, f"{tasks} call coroutines left"
    if ring_again:
        exts = extensions(app)
        rang = await ring_everyone(app, harness)
        if details:
            FIGURES.calls(test, placed=1, saved=len(await saved_calls(app)) - len(calls))
        else:
            FIGURES.unchecked(test, 1)
        assert rang == set(exts.values()), f"never rung again: {set(exts.values()) - rang}"
        channels, bridges = await leftovers(harness)
        assert (channels, bridges) == ([], [])
        assert await app.services.claims.busy() == set()
    return calls


async def assert_after_service(
    store: Store,
    harness: Harness,
    employees: Mapping[str, str],
    *,
    test: str,
    placed: int,
    metrics_url: str = "http://127.0.0.1:18090/metrics",
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """assert_after_faults for a `numcfg run` in its own process (a SIGKILL, a SIGHUP),
    seen from outside: its store, Asterisk, and its /metrics. `employees` maps employee ids
    to extensions; they are all set working and rung again through the check number."""
    deadline = time.monotonic() + timeout
    while True:  # numcfg writes the details once a call has ended
        calls = [c.to_json() for c in await asyncio.to_thread(store.calls.recent, limit=1000)]
        complete = [c for c in calls if c["disposition"] and c["ended_at"]]
        if len(complete) >= placed or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    channels, bridges = await leftovers(harness)
    spool = await spool_left(harness, calls)
    async with aiohttp.ClientSession() as http, http.get(metrics_url) as response:
        metrics = await response.text()
    gauge = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("numcfg_active_calls ")
    )
    FIGURES.calls(test, placed=placed, saved=len(complete))
    FIGURES.leftover(test, len(channels) + len(bridges) + len(spool) + int(gauge != 0))
    assert len(calls) == placed, f"{placed} calls placed, {len(calls)} with details"
    assert len(complete) == placed, f"calls without complete details: {calls}"
    assert channels == [], f"channels left: {channels}"
    assert bridges == [], f"bridges left: {bridges}"
    assert spool == [], f"recordings left in Asterisk's spool: {spool}"
    assert gauge == 0, f"active-calls gauge at {gauge}"
    for name in employees:
        await asyncio.to_thread(store.people.set_workday, name, "working")
    rang = await ring_all(harness, employees.values())
    deadline = time.monotonic() + timeout
    while (saved := len(await asyncio.to_thread(store.calls.recent, limit=1000))) <= placed:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    FIGURES.calls(test, placed=1, saved=saved - len(calls))
    assert rang == set(employees.values()), f"never rung again: {set(employees.values()) - rang}"
    assert await leftovers(harness) == ([], [])
    return calls
