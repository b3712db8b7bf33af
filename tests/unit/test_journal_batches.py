"""The journal writes what queued together in one transaction (issue 15: a thread hop and
a transaction per write were most of numcfg's CPU per call), without changing what the
store ends up with, and spools exactly what was not written when the store fails."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from asterisk_bridge.calls.core.journal import FINISHED, OPEN, Journal, coalesce
from asterisk_bridge.policy.types import Direction, Disposition
from asterisk_bridge.store import CallDetails, Spool, Store, open_store

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def details(call_id: str, *, finished: bool = False, route: tuple[str, ...] = ()) -> CallDetails:
    return CallDetails(
        id=call_id,
        number="main",
        direction=Direction.INCOMING,
        caller="+33612345678",
        callee="+33185000000",
        employee="anna" if finished else None,
        started_at=T0,
        answered_at=T0 + timedelta(seconds=2) if finished else None,
        ended_at=T0 + timedelta(seconds=30) if finished else None,
        duration=28 if finished else None,
        disposition=Disposition.ANSWERED if finished else Disposition.FAILED,
        route=route or (("greeting", "employee:anna") if finished else ("greeting",)),
        recording=None,
        recording_skipped=None,
        rating=None,
        transcript=None,
        crm=None,
    )


def entry(kind: str, call_id: str, **changes: Any) -> tuple[str, dict[str, Any]]:
    return kind, details(call_id, finished=kind == FINISHED, **changes).to_json()


def test_coalesce_keeps_a_calls_latest_note_or_its_save_in_order() -> None:
    entries = [
        entry(OPEN, "a"),
        entry(OPEN, "b"),
        entry(OPEN, "a", route=("greeting", "ivr:m:1")),
        entry(FINISHED, "b"),
        entry(OPEN, "c"),
    ]
    kept = [(kind, payload["id"], payload["route"]) for kind, payload in coalesce(entries)]
    assert kept == [
        (OPEN, "a", ["greeting", "ivr:m:1"]),
        (FINISHED, "b", ["greeting", "employee:anna"]),
        (OPEN, "c", ["greeting"]),
    ]


def test_coalesce_keeps_every_save_and_a_note_that_comes_after_one() -> None:
    # Never sent by a call, but a replayed spool could: the store must see both.
    entries = [entry(FINISHED, "a"), entry(OPEN, "a"), entry(FINISHED, "a")]
    assert [kind for kind, _ in coalesce(entries)] == [FINISHED, FINISHED]
    entries = [entry(FINISHED, "a"), entry(OPEN, "a")]
    assert [kind for kind, _ in coalesce(entries)] == [FINISHED, OPEN]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path}/numcfg.sqlite3")


class CountingWrites:
    """Counts the store's call-details transactions (the real ones run)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[int] = []
        real = store.calls.write

        def write(notes: list[tuple[CallDetails, bool]], *, node: str) -> None:
            self.batches.append(len(notes))
            real(notes, node=node)

        monkeypatch.setattr(store.calls, "write", write)


async def run_journal(journal: Journal, queue: Any) -> None:
    """Queue everything before the worker runs (as calls do while it is busy), then let
    it write and stop it."""
    await queue()
    worker = asyncio.create_task(journal.run())
    assert await journal.flush(5)
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker


async def test_writes_queued_together_go_in_one_transaction(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(store=store, spool=Spool(tmp_path / "spool.jsonl"), node="n1")
    writes = CountingWrites(store, monkeypatch)
    saved: list[asyncio.Future[bool]] = []

    async def queue() -> None:
        journal.call_open(details("a"))
        journal.call_open(details("b"))
        journal.call_open(dataclasses.replace(details("b"), route=("greeting", "ivr:m:1")))
        saved.append(asyncio.ensure_future(journal.call_finished(details("a", finished=True))))
        await asyncio.sleep(0)  # its task queues it

    await run_journal(journal, queue)
    assert writes.batches == [2]  # a's save (its note left out) and b's latest note
    assert await saved[0] is True
    assert [c.id for c in store.calls.recent()] == ["a"]
    assert [(c.id, c.route) for c in store.calls.in_progress()] == [("b", ("greeting", "ivr:m:1"))]
    assert not (tmp_path / "spool.jsonl").exists()


async def test_a_failing_callback_spools_itself_and_what_follows_not_what_was_written(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    journal = Journal(store=store, spool=spool, node="n1")

    def broken(**_: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(store.callbacks, "add_for_call", broken)
    asked: list[asyncio.Future[bool]] = []

    async def queue() -> None:
        journal.call_open(details("a"))
        asked.append(
            asyncio.ensure_future(
                journal.add_callback(
                    number="main",
                    phone="+33612345678",
                    attempts=3,
                    delay=300,
                    due_at=T0,
                    reason="missed",
                    call_id="a",
                )
            )
        )
        await asyncio.sleep(0)  # its task queues it, after a's note
        journal.call_open(details("b"))

    await run_journal(journal, queue)
    assert await asked[0] is False  # spooled, not written
    assert [c.id for c in store.calls.in_progress()] == ["a"]  # written before the fault
    assert [
        (kind, payload.get("id", payload.get("call_id"))) for kind, payload in spool.pending()
    ] == [
        ("callback", "a"),
        (OPEN, "b"),
    ]
    assert journal.degraded is not None
