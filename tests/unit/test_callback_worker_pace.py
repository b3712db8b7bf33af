"""When the callback worker looks at the store (issue 15): a job this node queues starts
at once, a job of a dead node as its lease runs out, another node's new job at the
fallback scan (a quarter of jobs.lease); idle, it looks no more often than that. The
virtual-hold worker reads the kept places at its 2 s pace only while there are some.

Against a real store (SQLite) and config; no Asterisk is needed: nobody is working, so
each attempt ends at "no free employee" (counted in the store) before it would ring."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from asterisk_bridge.ari.client import AriClient
from asterisk_bridge.ari.router import EventRouter
from asterisk_bridge.calls import virtual_hold
from asterisk_bridge.calls.callback import WakeOnCallbackQueued, callback_worker
from asterisk_bridge.calls.core.context import Services
from asterisk_bridge.calls.core.journal import Journal
from asterisk_bridge.config import ConfigHolder
from asterisk_bridge.metrics import Metrics
from asterisk_bridge.store import Spool, open_store
from tests.unit.admin_fixtures import CONFIG, ENV

NODE = "host/numcfg"
PHONE = "+33612345678"


def services_for(tmp_path: Path, jobs: str = "") -> Services:
    path = tmp_path / "numcfg.yaml"
    path.write_text(
        CONFIG.replace("STORE", str(tmp_path / "numcfg.sqlite3")).replace(
            "SMTP", "smtp://127.0.0.1:1"
        )
        + jobs
    )
    holder = ConfigHolder(path, env=ENV)
    store = open_store(holder.current.store)
    asterisk = holder.current.asterisk
    return Services(
        # Never called: with nobody working no attempt gets as far as ringing.
        client=AriClient(
            base_url=asterisk.ari_url,
            username=asterisk.username,
            password=asterisk.password,
            app=asterisk.app,
        ),
        router=EventRouter(on_unrouted=lambda _event: None),
        config_holder=holder,
        store=store,
        metrics=Metrics(),
        node=NODE,
        journal_node=NODE,
        journal=Journal(store=store, spool=Spool(tmp_path / "spool.jsonl"), node=NODE),
    )


@contextlib.asynccontextmanager
async def running(services: Services) -> AsyncIterator[None]:
    """The journal (waking the worker as app.py wires it) and the callback worker."""
    services.journal.on_written(WakeOnCallbackQueued(services.runtime))
    tasks = [
        asyncio.create_task(services.journal.run()),
        asyncio.create_task(callback_worker(services)),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await services.client.close()
        services.store.close()


async def attempted(services: Services, timeout: float = 5.0) -> float:
    """Seconds until a job has had an attempt counted."""
    started = time.monotonic()
    while not any(job.attempts_made for job in services.store.callbacks.jobs()):
        assert time.monotonic() - started < timeout, "no attempt was made"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_a_callback_this_node_queues_starts_at_once_not_at_the_next_scan(
    tmp_path: Path,
) -> None:
    """jobs.lease 60 s: the fallback scan is 15 s away (the old scan was 5 s)."""
    services = services_for(tmp_path)
    async with running(services):
        await asyncio.sleep(0.3)  # the worker found nothing and sleeps
        queued = time.monotonic()
        assert await services.journal.add_callback(
            number="paris",
            phone=PHONE,
            attempts=5,
            delay=60,
            due_at=datetime.now(UTC),
            reason="missed",
        )
        await attempted(services)
        assert time.monotonic() - queued < 0.5
    (job,) = services.store.callbacks.jobs()
    assert job.attempts_made == 1 and job.status == "pending"  # again in 60 s


async def test_a_callback_of_a_dead_node_is_taken_over_as_its_lease_runs_out(
    tmp_path: Path,
) -> None:
    services = services_for(tmp_path)
    store = services.store
    store.callbacks.add(
        number="paris", phone=PHONE, attempts=5, delay=60, due_at=datetime.now(UTC), reason="x"
    )
    claimed = time.monotonic()
    assert store.callbacks.claim_due(datetime.now(UTC), node="dead", lease=1.0) is not None
    async with running(services):
        await attempted(services)
        taken = time.monotonic() - claimed
    assert 1.0 <= taken < 1.6  # when the lease ran out, not at the 15 s fallback scan


async def test_a_callback_another_process_queued_is_found_by_the_fallback_scan(
    tmp_path: Path,
) -> None:
    """Added straight into the store (another node, `numcfg callback`: no wake here),
    jobs.lease 0.8 s: found by the scan every quarter of the lease (0.2 s)."""
    services = services_for(tmp_path, "jobs:\n  lease: 0.8\n")
    async with running(services):
        await asyncio.sleep(0.3)  # the worker found nothing and sleeps
        services.store.callbacks.add(
            number="paris", phone=PHONE, attempts=5, delay=60, due_at=datetime.now(UTC), reason="x"
        )
        assert await attempted(services) < 0.6


async def test_a_retry_is_taken_at_its_due_time(tmp_path: Path) -> None:
    """A failed attempt is due again `delay` seconds on (1 s here): the worker wakes then,
    not at its 15 s fallback scan."""
    services = services_for(tmp_path)
    async with running(services):
        assert await services.journal.add_callback(
            number="paris", phone=PHONE, attempts=3, delay=1, due_at=datetime.now(UTC), reason="x"
        )
        await attempted(services)
        first = time.monotonic()
        while services.store.callbacks.jobs()[0].attempts_made < 2:
            assert time.monotonic() - first < 5, "the retry never came"
            await asyncio.sleep(0.01)
        assert 0.9 <= time.monotonic() - first < 1.6


async def test_an_idle_callback_worker_looks_once_per_quarter_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing to do, jobs.lease 2 s: a look at start, then one every 0.5 s; each a read,
    never a claim (a write transaction) while nothing is due."""
    services = services_for(tmp_path, "jobs:\n  lease: 2\n")
    looks: list[float] = []
    claims: list[float] = []
    jobs = services.store.callbacks
    next_due, claim_due = jobs.next_due, jobs.claim_due

    def counted_look() -> Any:
        looks.append(time.monotonic())
        return next_due()

    def counted_claim(*args: Any, **kwargs: Any) -> Any:
        claims.append(time.monotonic())
        return claim_due(*args, **kwargs)

    monkeypatch.setattr(jobs, "next_due", counted_look)
    monkeypatch.setattr(jobs, "claim_due", counted_claim)
    async with running(services):
        await asyncio.sleep(1.7)
    assert 3 <= len(looks) <= 5
    assert min(b - a for a, b in itertools.pairwise(looks)) > 0.4
    assert claims == []


# -- the kept places of virtual hold -------------------------------------------------------


def counting_held_reads(services: Services, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    reads: list[float] = []
    held = services.store.callbacks.held

    def counted() -> Any:
        reads.append(time.monotonic())
        return held()

    monkeypatch.setattr(services.store.callbacks, "held", counted)
    return reads


async def test_with_no_kept_place_the_held_worker_reads_the_store_only_when_woken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No kept place anywhere, jobs.lease 60 s: one read at start, none at the 2 s pace
    (HELD_SCAN_SECONDS, shortened here to 0.1 s), one more as soon as this node keeps a
    place (HoldOffer wakes the worker once the caller is gone)."""
    monkeypatch.setattr(virtual_hold, "HELD_SCAN_SECONDS", 0.1)
    services = services_for(tmp_path)
    reads = counting_held_reads(services, monkeypatch)
    worker = asyncio.create_task(virtual_hold.held_worker(services))
    try:
        await asyncio.sleep(0.5)
        assert len(reads) == 1
        services.runtime.held_queued.set()
        await asyncio.sleep(0.05)
        assert len(reads) == 2
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        await services.client.close()
        services.store.close()


async def test_while_places_are_kept_the_held_worker_reads_at_its_pace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A place kept (on any node) in the store: the line is read every HELD_SCAN_SECONDS
    (0.1 s here), so a member who becomes free is given to it quickly."""
    monkeypatch.setattr(virtual_hold, "HELD_SCAN_SECONDS", 0.1)
    services = services_for(tmp_path)
    now = datetime.now(UTC)
    services.store.callbacks.add_for_call(
        number="paris",
        phone=PHONE,
        attempts=2,
        delay=60,
        due_at=now,
        reason=virtual_hold.REASON,
        call_id="c1",
        queue="sales",
        joined_at=now,
    )
    reads = counting_held_reads(services, monkeypatch)
    worker = asyncio.create_task(virtual_hold.held_worker(services))
    try:
        await asyncio.sleep(0.55)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        await services.client.close()
        services.store.close()
    assert len(reads) >= 4
    assert list(services.runtime.held) == ["sales"]  # nobody works: still waiting
