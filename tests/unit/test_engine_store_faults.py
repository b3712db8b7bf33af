"""A store that cannot be written (issue 17): calls are still routed and connected, their
details are spooled and written once the store is back, /ready says degraded, API writes
answer 503 with the JSON error shape. The real App against the fake ARI, with the SQLite
store locked by another writer (what a stuck `numcfg` CLI or a backup tool does)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from asterisk_bridge.calls.core import journal as journal_module
from asterisk_bridge.store import engine as engine_module
from tests.fakeari.engine import Engine, StartEngine

pytest_plugins = ["tests.fakeari.fixtures", "tests.fakeari.engine_fixtures"]


@pytest.fixture(autouse=True)
def quick_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    # A write waits this long on the lock before it counts as failed, and the journal
    # tries again this often: seconds in production, fractions here.
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_S", 0.2)
    monkeypatch.setattr(journal_module, "RETRY_SECONDS", 0.2)


def store_path(engine: Engine) -> Path:
    return Path(engine.app.config_holder.current.store.removeprefix("sqlite:///"))


@pytest.fixture
def locker() -> Iterator[list[sqlite3.Connection]]:
    held: list[sqlite3.Connection] = []
    yield held
    for conn in held:
        conn.close()


def lock(path: Path, held: list[sqlite3.Connection]) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)  # the app may be writing
    conn.execute("BEGIN IMMEDIATE")  # the write lock, held until rollback
    held.append(conn)
    return conn


async def test_a_locked_store_connects_the_call_and_writes_its_details_later(
    start_engine_app: StartEngine, locker: list[sqlite3.Connection]
) -> None:
    engine = await start_engine_app()
    engine.working("anna")
    conn = lock(store_path(engine), locker)

    caller = await engine.incoming()
    leg = await engine.next_leg()
    await engine.answer_leg(leg)
    await engine.wait_bridged(caller, leg)  # connected although nothing can be written
    await engine.hangup(leg)
    await engine.wait_for(lambda: not engine.app.services.active, 10, "the call to end")
    assert engine.app.journal.degraded is not None
    assert await asyncio.to_thread(engine.app.store.calls.recent) == []
    spool = engine.app.journal._spool.path
    assert spool.exists() and oct(spool.stat().st_mode & 0o777) == "0o600"

    async with aiohttp.ClientSession() as http:
        base = f"http://{engine.app.config_holder.current.api.listen}"
        async with http.get(f"{base}/ready") as resp:
            ready = await resp.json()
        assert resp.status == 503 and ready["status"] == "degraded"
        assert any("store" in reason for reason in ready["reasons"])
        async with http.post(
            f"{base}/api/employees/boris/workday",
            json={"state": "working"},
            headers={"Authorization": "Bearer test-token"},
        ) as resp:
            body = await resp.json()
        assert resp.status == 503
        assert body["error"]["code"] == "store_unavailable"

    conn.rollback()
    await engine.wait_for(lambda: engine.app.journal.degraded is None, 10, "the spool to drain")
    (call,) = await engine.calls_done()
    assert call["disposition"] == "answered" and call["employee"] == "anna"
    assert not spool.exists()
    assert engine.app.store.people.workday("boris") is None  # the refused write changed nothing
    await engine.assert_idle()


async def test_spooled_details_of_a_stopped_node_are_written_at_its_next_start(
    start_engine_app: StartEngine, locker: list[sqlite3.Connection], tmp_path: Path
) -> None:
    engine = await start_engine_app()
    engine.working("anna")
    conn = lock(store_path(engine), locker)
    caller = await engine.incoming()
    await engine.next_leg()
    await engine.hangup(caller)
    await engine.wait_for(lambda: not engine.app.services.active, 10, "the call to end")
    await engine.app.stop()  # store still locked: the details stay in the spool
    assert engine.app.journal._spool.pending()
    conn.rollback()

    again = await start_engine_app()
    await again.wait_for(lambda: again.app.journal.degraded is None, 10, "the spool to drain")
    (call,) = await again.calls_done()
    assert call["disposition"] == "abandoned"
