"""Kept places of virtual hold in the store (SPEC section 9), on SQLite and PostgreSQL:
their first attempt waits for its turn (not for due_at), one node takes each, a restarted
node finds them in their place, one caller never has two callbacks at once, and a
callback's details name the call it calls back."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from asterisk_bridge.policy.types import CallbackStatus, Direction, Disposition
from asterisk_bridge.store import CallbackJob, CallDetails, Store, open_store
from asterisk_bridge.store.tables import metadata
from tests.fixtures_pg import fresh_database

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PHONE = "+33612345678"


@pytest.fixture(scope="module")
def pg_db(pg_url: str) -> Iterator[str]:
    with fresh_database(pg_url) as url:
        open_store(url).close()
        yield url


@pytest.fixture(params=["sqlite", "pg"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'numcfg.sqlite3'}"
    url = str(request.getfixturevalue("pg_db"))
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY")
    engine.dispose()
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def keep_place(store: Store, *, phone: str = PHONE, joined: float = 0, **kw: Any) -> CallbackJob:
    job = store.callbacks.add_for_call(
        number=kw.pop("number", "paris"),
        phone=phone,
        attempts=kw.pop("attempts", 2),
        delay=60,
        due_at=T0,
        reason="virtual_hold",
        call_id=kw.pop("call_id", f"call-{phone}"),
        queue="sales",
        joined_at=T0 + timedelta(seconds=joined),
    )
    assert job is not None
    return job


def test_a_kept_place_waits_for_its_turn_not_for_its_due_time(store: Store) -> None:
    job = keep_place(store)
    assert job.holds_place and job.queue == "sales" and job.call_id == f"call-{PHONE}"
    assert job.to_json()["joined_at"] == "2026-12-01T09:00:00+00:00"
    assert store.callbacks.claim_due(T0 + timedelta(hours=1), node="a") is None
    assert [held.id for held in store.callbacks.held()] == [job.id]


def test_kept_places_are_listed_in_the_order_their_callers_joined(store: Store) -> None:
    late = keep_place(store, phone="+33600000002", joined=20)
    early = keep_place(store, phone="+33600000001", joined=5)
    assert [job.id for job in store.callbacks.held()] == [early.id, late.id]


def test_one_node_takes_a_kept_place_once(store_url: str) -> None:
    node_a, node_b = open_store(store_url), open_store(store_url)
    try:
        job = keep_place(node_a)
        taken = node_a.callbacks.claim_held(job.id, node="a", now=T0)
        assert taken is not None and taken.status is CallbackStatus.IN_PROGRESS
        assert node_b.callbacks.claim_held(job.id, node="b", now=T0) is None
        assert node_b.callbacks.held() == []
    finally:
        node_a.close()
        node_b.close()


def test_a_restarted_node_finds_the_kept_place_where_it_was(store: Store) -> None:
    job = keep_place(store, joined=7)
    store.callbacks.claim_held(job.id, node="a", now=T0)
    store.callbacks.requeue_node("a", now=T0 + timedelta(seconds=30))  # node a starts again
    (back,) = store.callbacks.held()
    assert back.id == job.id and back.joined_at == T0 + timedelta(seconds=7)


def test_after_a_failed_first_attempt_the_retries_are_plain_callbacks(store: Store) -> None:
    job = keep_place(store)
    store.callbacks.claim_held(job.id, node="a", now=T0)
    store.callbacks.finish_attempt(job.id, success=False, now=T0)
    assert store.callbacks.held() == []
    assert store.callbacks.claim_due(T0 + timedelta(seconds=59), node="a") is None
    retry = store.callbacks.claim_due(T0 + timedelta(seconds=60), node="a")
    assert retry is not None and retry.id == job.id and retry.attempts_made == 1


def test_one_caller_never_has_two_callbacks_at_once(store: Store) -> None:
    first = keep_place(store)
    again = store.callbacks.add_for_call(
        number="paris",
        phone=PHONE,
        attempts=3,
        delay=60,
        due_at=T0,
        reason="abandoned",  # the same caller calls again and hangs up
        call_id="call-2",
    )
    assert again is None
    assert [job.id for job in store.callbacks.jobs()] == [first.id]
    assert store.callbacks.has_active("paris", PHONE)
    assert not store.callbacks.has_active("lyon", PHONE)
    assert keep_place(store, number="lyon").number == "lyon"  # another number: its own


def test_a_callback_asked_by_hand_also_counts(store: Store) -> None:
    store.callbacks.add(
        number="paris", phone=PHONE, attempts=1, delay=0, due_at=T0, reason="requested"
    )
    assert store.callbacks.has_active("paris", PHONE)
    made = store.callbacks.add_for_call(
        number="paris",
        phone=PHONE,
        attempts=1,
        delay=0,
        due_at=T0,
        reason="missed",
        call_id="c",
    )
    assert made is None


@pytest.mark.parametrize("success", [True, False], ids=["done", "failed"])
def test_a_finished_callback_lets_the_caller_ask_again(store: Store, success: bool) -> None:
    job = keep_place(store, attempts=1)
    store.callbacks.claim_held(job.id, node="a", now=T0)
    store.callbacks.finish_attempt(job.id, success=success, now=T0)
    assert not store.callbacks.has_active("paris", PHONE)
    assert keep_place(store, call_id="call-again").id != job.id


def test_two_nodes_adding_one_callers_callback_together_add_one(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(4)]
    try:

        def add(store: Store) -> CallbackJob | None:
            return store.callbacks.add_for_call(
                number="paris",
                phone=PHONE,
                attempts=1,
                delay=0,
                due_at=T0,
                reason="missed",
                call_id="c",
            )

        with ThreadPoolExecutor(len(stores)) as pool:
            made = list(pool.map(add, stores))
        assert sum(job is not None for job in made) == 1
        assert len(stores[0].callbacks.jobs()) == 1
    finally:
        for opened in stores:
            opened.close()


def test_a_kept_place_needs_both_its_queue_and_its_join_time(store: Store) -> None:
    with pytest.raises(ValueError, match="queue and the time"):
        store.callbacks.add_for_call(
            number="paris",
            phone=PHONE,
            attempts=1,
            delay=0,
            due_at=T0,
            reason="virtual_hold",
            call_id="c",
            queue="sales",
        )
    assert store.callbacks.jobs() == []


def test_a_callbacks_details_name_the_call_it_calls_back(store: Store) -> None:
    details = CallDetails(
        id="cb-1",
        number="paris",
        direction=Direction.CALLBACK,
        caller="+33185000000",
        callee=PHONE,
        employee="anna",
        started_at=T0,
        answered_at=T0,
        ended_at=T0 + timedelta(seconds=30),
        duration=30,
        disposition=Disposition.ANSWERED,
        route=("employee:anna", f"forward:{PHONE}"),
        recording=None,
        recording_skipped=None,
        rating=None,
        transcript=None,
        crm=None,
        callback_of="first-call",
    )
    store.calls.save(details)
    saved = store.calls.get("cb-1")
    assert saved is not None and saved.callback_of == "first-call"
    assert list(saved.to_json())[-1] == "callback_of"  # appended after the SPEC's keys
    assert CallDetails.from_json(saved.to_json()) == saved
    spooled_by_an_older_release = {k: v for k, v in details.to_json().items() if k != "callback_of"}
    assert CallDetails.from_json(spooled_by_an_older_release) == dataclasses.replace(
        details, callback_of=None
    )
