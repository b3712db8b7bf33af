"""Store faults on the rig (issue 17): the SQLite store locked by another writer, and
the store's files deleted while numcfg runs. Calls are still routed and connected."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from asterisk_bridge.calls.core import journal as journal_module
from asterisk_bridge.store import engine as engine_module
from tests.integration.harness import Employee, Harness

from .checks import all_working, assert_after_faults
from .figures import FIGURES

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

WELCOME = "sound:numcfg/en/welcome"


@pytest.fixture(autouse=True)
def quick_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    # Read when the App opens its store: a locked write fails after half a second
    # instead of ten, and the journal tries the store again as often.
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_S", 0.5)
    monkeypatch.setattr(journal_module, "RETRY_SECONDS", 0.5)


@pytest.fixture
def locker() -> Iterator[list[sqlite3.Connection]]:
    held: list[sqlite3.Connection] = []
    yield held
    for conn in held:
        conn.close()


def queue_config() -> dict:
    return {
        "queues": {
            "sales": {
                "members": ["anna", "boris"],
                "ring_time": 5,
                "max_wait": 20,
                "fallback": {"action": "hangup"},
            }
        },
        "numbers": {"paris": {"routing": {"greeting": WELCOME, "queue": "sales"}}},
    }


async def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def answered_call(harness: Harness, caller: str = "+33612345678") -> None:
    """One call to paris: greeting heard, bridged with an employee, who hangs up."""
    leg = await harness.call("+33185000000", caller=caller)
    await harness.heard(leg, WELCOME)
    await harness.bridged(leg, timeout=20)
    await harness.ended(leg, timeout=20)


async def test_a_locked_store_still_connects_the_caller_and_writes_the_details_later(
    harness: Harness,
    numcfg,
    tmp_path: Path,
    locker: list[sqlite3.Connection],
    request: pytest.FixtureRequest,
) -> None:
    app = await numcfg(queue_config())
    for name in ("anna", "boris"):
        await asyncio.to_thread(app.store.people.set_workday, name, "working")
    harness.employees["101"] = Employee("answer", answer_after=0.2, hangup_after=1.0)
    harness.employees["102"] = Employee("answer", answer_after=0.2, hangup_after=1.0)
    # Waits out a write of the app's own (its background workers write at start), then
    # holds the lock as another writer would.
    conn = sqlite3.connect(tmp_path / "numcfg.sqlite3", isolation_level=None, timeout=10)
    conn.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    locker.append(conn)
    FIGURES.fault(request.node.name)

    await asyncio.gather(*(answered_call(harness, f"+3361234567{i}") for i in range(3)))
    await wait_until(lambda: not app.services.active, 20, "the calls to end")
    assert app.journal.degraded is not None
    assert await asyncio.to_thread(app.store.calls.recent) == []  # nothing written yet

    conn.rollback()
    await wait_until(lambda: app.journal.degraded is None, 20, "the spool to be written")
    calls = await assert_after_faults(app, harness, test=request.node.name, placed=3)
    assert {c["disposition"] for c in calls} == {"answered"}
    assert {c["employee"] for c in calls} <= {"anna", "boris"}
    assert all(c["route"][0] == "greeting" for c in calls)


def remove_store_files(store_file: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{store_file}{suffix}")


def calls_on_disk(store_file: Path) -> int | None:
    """Calls in the file at `store_file` now, as another process would see them (None:
    no usable store there)."""
    if not store_file.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{store_file}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT count(*) FROM calls").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return None


async def test_a_deleted_store_still_routes_and_connects_calls(
    harness: Harness, numcfg, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    app = await numcfg(queue_config())
    await all_working(app)  # before the fault: the store cannot take it afterwards
    harness.employees["101"] = Employee("answer", answer_after=0.2, hangup_after=1.0)
    harness.employees["102"] = Employee("answer", answer_after=0.2, hangup_after=1.0)
    store_file = tmp_path / "numcfg.sqlite3"
    await answered_call(harness)  # one call before, so every pooled connection is warm
    remove_store_files(store_file)
    FIGURES.fault(request.node.name)

    await asyncio.gather(*(answered_call(harness, f"+3361234568{i}") for i in range(3)))
    await wait_until(lambda: not app.services.active, 20, "the calls to end")
    # Routed and connected (answered_call saw each caller bridged), nothing left behind.
    # The details are checked across a restart by the test below.
    await assert_after_faults(app, harness, test=request.node.name, placed=4, details=False)


async def test_calls_after_the_store_was_deleted_keep_their_details_across_a_restart(
    harness: Harness, numcfg, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    app = await numcfg(queue_config())
    await all_working(app)  # before the fault: the store cannot take it afterwards
    harness.employees["101"] = Employee("answer", answer_after=0.2, hangup_after=1.0)
    harness.employees["102"] = Employee("answer", answer_after=0.2, hangup_after=1.0)
    store_file = tmp_path / "numcfg.sqlite3"
    await answered_call(harness)
    remove_store_files(store_file)
    FIGURES.fault(request.node.name)
    await answered_call(harness, "+33612345690")
    await assert_after_faults(
        app, harness, test=request.node.name, placed=2, ring_again=False, details=False
    )
    assert app.journal.degraded is not None  # spooled while the file is gone
    await app.drain(timeout=10)
    await app.stop()
    # The next start makes a new store at the path and writes the spooled details first.
    again = await numcfg(queue_config())
    await wait_until(lambda: again.journal.degraded is None, 20, "the spool to be written")
    after = await asyncio.to_thread(again.store.calls.recent)
    assert "+33612345690" in [c.caller for c in after], (
        f"{calls_on_disk(store_file)} calls on disk after the restart"
    )


# -- a read-only and a full store (issue 17's second finding) ---------------------------------


@contextlib.contextmanager
def store_fault(folder: Path, kind: str) -> Iterator[None]:
    """Make the store's folder read-only (a read-only bind mount: root ignores file
    modes) or full (a small tmpfs filled up), and put it back afterwards."""
    if kind == "read_only":
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        try:
            yield
        finally:
            # Lazily: numcfg's pooled connections still hold the store's files open.
            subprocess.run(["umount", "-l", str(folder)], check=True)
        return
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out:  # fill the tmpfs to the last byte
        for size in (65536, 1):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * size)
    try:
        yield
    finally:
        filler.unlink()


@pytest.fixture
def store_folder(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    folder = tmp_path / "store"
    folder.mkdir()
    if getattr(request, "param", "") == "full":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], check=True)
    yield folder
    if getattr(request, "param", "") == "full":
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("store_folder", ["read_only", "full"], indirect=True)
async def test_a_read_only_or_full_store_still_connects_callers_and_loses_no_details(
    harness: Harness, numcfg, store_folder: Path, request: pytest.FixtureRequest
) -> None:
    kind = request.node.callspec.params["store_folder"]
    config = queue_config()
    config["store"] = f"sqlite:///{store_folder}/numcfg.sqlite3"
    app = await numcfg(config)
    await all_working(app)
    harness.employees["101"] = Employee("answer", answer_after=0.2, hangup_after=1.0)
    harness.employees["102"] = Employee("answer", answer_after=0.2, hangup_after=1.0)
    await answered_call(harness)  # one call before the fault
    FIGURES.fault(request.node.name)
    with store_fault(store_folder, kind):
        await asyncio.gather(*(answered_call(harness, f"+3361234570{i}") for i in range(3)))
        await wait_until(lambda: not app.services.active, 20, "the calls to end")
        assert app.journal.degraded is not None  # the details wait in the spool
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer test-token"}) as http:
            url = "http://127.0.0.1:18090/api/employees/anna/workday"
            async with http.post(url, json={"state": "paused"}) as response:
                body = await response.json()
                assert response.status == 503, body
                assert body["error"]["code"]
            async with http.get("http://127.0.0.1:18090/ready") as response:
                ready = await response.json()
            assert ready["status"] == "degraded", ready
    # Writable again: the spooled details are written, none lost, nothing left behind.
    await wait_until(lambda: app.journal.degraded is None, 30, "the spool to be written")
    calls = await assert_after_faults(app, harness, test=request.node.name, placed=4)
    assert {c["disposition"] for c in calls} == {"answered"}
