"""The store behaves the same on SQLite and PostgreSQL, including under concurrency.

Every test that takes `store` runs once per backend. The PostgreSQL runs use a throwaway
server (tests/pgserver.py) and a fresh database per test; they skip where no server can be
started.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
import sqlalchemy as sa

from asterisk_bridge.policy.types import (
    CallbackStatus,
    Direction,
    Disposition,
    NumberStatus,
    Workday,
)
from asterisk_bridge.store import (
    CONFIG_CHANNEL,
    CallbackJob,
    CallDetails,
    NotFoundError,
    Store,
    open_store,
)
from asterisk_bridge.store.engine import Database
from asterisk_bridge.store.tables import metadata
from tests.fixtures_pg import fresh_database

T = TypeVar("T")

PARIS = timezone(timedelta(hours=1))
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=PARIS)


def two_stores(url: str) -> tuple[Store, Store]:
    """Two independent stores on one database: what two numcfg nodes see."""
    return open_store(url), open_store(url)


@pytest.fixture(scope="module")
def pg_store_db(pg_url: str) -> Iterator[str]:
    """One PostgreSQL database with the schema for this module; tests empty it."""
    with fresh_database(pg_url) as url:
        open_store(url).close()
        yield url


@pytest.fixture(params=["sqlite", "pg"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'numcfg.sqlite3'}"
    url = str(request.getfixturevalue("pg_store_db"))
    # Emptying the tables is ten times faster than a new database per test.
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


def call_details(call_id: str = "c1", **changes: Any) -> CallDetails:
    details = CallDetails(
        id=call_id,
        number="paris",
        direction=Direction.INCOMING,
        caller="+33612345678",
        callee="+33185000000",
        employee="anna",
        started_at=T0,
        answered_at=T0 + timedelta(seconds=5),
        ended_at=T0 + timedelta(seconds=47),
        duration=42,
        disposition=Disposition.ANSWERED,
        route=("warning", "greeting", "ivr:main:1", "queue:sales", "employee:anna"),
        recording={"file": "/rec/c1.wav", "seconds": 40},
        recording_skipped=None,
        rating=None,
        transcript=None,
        crm={"entity": "lead", "id": "17", "created": True},
    )
    return dataclasses.replace(details, **changes)


def run_together(count: int, action: Callable[[int], T]) -> list[T]:
    """Run `action(i)` in `count` threads released at the same instant."""
    barrier = threading.Barrier(count)

    def worker(index: int) -> T:
        barrier.wait()
        return action(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(worker, range(count)))


def is_utc(value: datetime | None) -> bool:
    return value is not None and value.utcoffset() == timedelta(0)


# -- opening ---------------------------------------------------------------------------------


def test_ping_answers_true_on_a_reachable_store(store: Store) -> None:
    assert store.ping() is True


def test_ping_answers_false_instead_of_raising_when_the_server_is_down() -> None:
    # Port 1 on localhost: connection refused at once.
    engine = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert Store(db=Database(engine=engine)).ping() is False


def test_reopening_keeps_the_data_and_the_tables(store_url: str) -> None:
    first = open_store(store_url)
    first.people.set_workday("anna", Workday.WORKING)
    first.close()
    second = open_store(store_url)
    assert second.people.workday("anna") is Workday.WORKING
    second.close()


def test_nodes_starting_together_on_an_empty_postgresql_both_open_it(
    pg_db_url: str,
) -> None:
    stores = run_together(3, lambda _: open_store(pg_db_url))
    stores[0].people.set_workday("anna", Workday.WORKING)
    assert [s.people.workday("anna") for s in stores] == [Workday.WORKING] * 3
    for opened in stores:
        opened.close()


def test_sqlite_store_creates_its_directory(tmp_path: Path) -> None:
    opened = open_store(f"sqlite:///{tmp_path / 'var' / 'lib' / 'numcfg.sqlite3'}")
    assert (tmp_path / "var" / "lib" / "numcfg.sqlite3").exists()
    opened.close()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "mysql://u@h/db"])
def test_in_memory_and_unknown_databases_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        open_store(url)


# -- call details ----------------------------------------------------------------------------


def test_call_details_round_trip_with_aware_utc_datetimes(store: Store) -> None:
    saved = call_details()
    store.calls.save(saved)
    call = store.calls.get("c1")
    assert call == saved  # the same instants, whatever zone they were written in
    assert call is not None and all(
        is_utc(t) for t in (call.started_at, call.answered_at, call.ended_at)
    )
    assert call.direction is Direction.INCOMING and call.disposition is Disposition.ANSWERED


def test_call_details_json_is_the_spec_shape_in_utc(store: Store) -> None:
    store.calls.save(call_details())
    call = store.calls.get("c1")
    assert call is not None
    assert call.to_json() == {
        "id": "c1",
        "number": "paris",
        "direction": "incoming",
        "caller": "+33612345678",
        "callee": "+33185000000",
        "employee": "anna",
        "started_at": "2026-11-27T08:00:00+00:00",
        "answered_at": "2026-11-27T08:00:05+00:00",
        "ended_at": "2026-11-27T08:00:47+00:00",
        "duration": 42,
        "disposition": "answered",
        "route": ["warning", "greeting", "ivr:main:1", "queue:sales", "employee:anna"],
        "recording": {"file": "/rec/c1.wav", "seconds": 40},
        "recording_skipped": None,
        "rating": None,
        "transcript": None,
        "transcript_status": None,
        "crm": {"entity": "lead", "id": "17", "created": True},
        "transfers": [],
        "purged": None,
        "callback_of": None,
    }
    assert list(call.to_json()) == [field.name for field in dataclasses.fields(CallDetails)]


def test_save_call_accepts_nulls(store: Store) -> None:
    store.calls.save(
        call_details(
            answered_at=None,
            ended_at=T0 + timedelta(seconds=30),
            employee=None,
            disposition=Disposition.MISSED,
            route=(),
            recording=None,
            recording_skipped="quota",
            crm=None,
        )
    )
    call = store.calls.get("c1")
    assert call is not None
    assert call.started_at == T0
    assert call.answered_at is None
    assert call.recording is None and call.crm is None and call.route == ()
    assert call.recording_skipped == "quota"


def test_save_call_replaces_the_record_with_the_same_id(store: Store) -> None:
    store.calls.save(call_details(disposition=Disposition.MISSED))
    store.calls.save(call_details(disposition=Disposition.ANSWERED, rating=4))
    assert len(store.calls.recent()) == 1
    call = store.calls.get("c1")
    assert call is not None and call.disposition is Disposition.ANSWERED and call.rating == 4


def test_calls_left_open_by_a_killed_node_are_closed_with_their_details(store: Store) -> None:
    talking = call_details("c1", ended_at=None, route=("queue:sales",))
    ringing = call_details("c2", answered_at=None, employee=None, ended_at=None, route=())
    other_node = call_details("c3", ended_at=None)
    store.calls.note_open(talking, node="host/numcfg")
    store.calls.note_open(ringing, node="host/numcfg")
    store.calls.note_open(other_node, node="host/numcfg-b")
    assert store.calls.recent() == []  # calls in progress are not call details yet
    now = datetime(2026, 11, 27, 8, 1, 5, tzinfo=UTC)
    assert sorted(store.calls.close_interrupted(node="host/numcfg", now=now)) == ["c1", "c2"]
    c1, c2 = store.calls.get("c1"), store.calls.get("c2")
    assert c1 is not None and c2 is not None
    assert (c1.disposition, c1.duration, c1.route) == (
        Disposition.ANSWERED,
        60,
        ("queue:sales", "interrupted"),
    )
    assert (c2.disposition, c2.ended_at) == (Disposition.FAILED, now)
    assert c1.started_at == T0 and is_utc(c1.started_at)
    assert store.calls.get("c3") is None  # another node's calls are its own business
    assert store.calls.close_interrupted(node="host/numcfg", now=now) == []


def test_a_finished_call_is_no_longer_open(store: Store) -> None:
    store.calls.note_open(call_details("c1", ended_at=None), node="n")
    store.calls.save(call_details("c1"))
    assert store.calls.close_interrupted(node="n", now=datetime.now(UTC)) == []
    assert store.calls.get("c1") == store.calls.recent()[0]


def test_get_call_of_an_unknown_id_is_none(store: Store) -> None:
    assert store.calls.get("nope") is None


@pytest.mark.parametrize(
    "bad",
    [
        {"started_at": datetime(2026, 11, 27, 9)},
        {"answered_at": datetime(2026, 11, 27, 9)},
        {"direction": "sideways"},
        {"disposition": "lost"},
        {"route": "queue:sales"},
        {"route": ("queue:sales", 3)},
    ],
)
def test_save_call_refuses_malformed_details(store: Store, bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        store.calls.save(call_details(**bad))
    with pytest.raises(ValueError):
        store.calls.note_open(call_details(**bad), node="n")
    assert store.calls.get("c1") is None


def test_list_calls_is_newest_first_and_filters_by_number_since_and_limit(store: Store) -> None:
    for minute, (call_id, number) in enumerate([("a", "paris"), ("b", "lyon"), ("c", "paris")]):
        store.calls.save(
            call_details(call_id, number=number, started_at=T0 + timedelta(minutes=minute))
        )
    assert [c.id for c in store.calls.recent()] == ["c", "b", "a"]
    assert [c.id for c in store.calls.recent(number="paris")] == ["c", "a"]
    assert [c.id for c in store.calls.recent(since=T0 + timedelta(minutes=1))] == ["c", "b"]
    assert [c.id for c in store.calls.recent(limit=1)] == ["c"]
    # `since` is an instant: the same moment written in UTC selects the same calls.
    since_utc = (T0 + timedelta(minutes=1)).astimezone(UTC)
    assert [c.id for c in store.calls.recent(number="paris", since=since_utc)] == ["c"]
    with pytest.raises(ValueError):
        store.calls.recent(limit=0)


# -- workday ---------------------------------------------------------------------------------


def test_workday_state_is_none_until_started_then_follows_changes(store: Store) -> None:
    assert store.people.workday("anna") is None
    store.people.set_workday("anna", Workday.WORKING)
    store.people.set_workday("boris", Workday.WORKING)
    store.people.set_workday("anna", Workday.PAUSED)
    assert store.people.workday("anna") is Workday.PAUSED
    assert store.people.workdays() == {"anna": Workday.PAUSED, "boris": Workday.WORKING}
    with pytest.raises(ValueError):
        store.people.set_workday("anna", "lunch")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.people.set_workday("anna", Workday.NOT_STARTED)  # what no stored state means


# -- employee claims -------------------------------------------------------------------------


def claim(store: Store, employee: str, call_id: str, node: str, **kwargs: Any) -> bool:
    return store.people.claim(employee, call_id=call_id, node=node, **kwargs)


def test_a_claimed_employee_is_refused_to_other_calls_until_released(store: Store) -> None:
    assert claim(store, "anna", "call-1", "node-a") is True
    assert claim(store, "anna", "call-2", "node-b") is False
    assert store.people.busy() == {"anna"}
    # Claiming again for the same call is not a conflict.
    assert claim(store, "anna", "call-1", "node-a") is True
    # Only the holder releases.
    store.people.release("anna", call_id="call-2")
    assert claim(store, "anna", "call-2", "node-b") is False
    store.people.release("anna", call_id="call-1")
    assert store.people.busy() == set()
    assert claim(store, "anna", "call-2", "node-b") is True


def test_claims_are_per_employee(store: Store) -> None:
    assert claim(store, "anna", "call-1", "node-a") is True
    assert claim(store, "boris", "call-2", "node-a") is True


def test_a_stale_claim_is_taken_over(store: Store) -> None:
    assert claim(store, "anna", "call-1", "node-a") is True
    assert claim(store, "anna", "call-2", "node-b", stale_after=3600) is False
    threading.Event().wait(0.01)  # so the first claim is strictly older than "now - 0"
    assert store.people.busy(stale_after=0) == set()
    assert claim(store, "anna", "call-2", "node-b", stale_after=0) is True
    assert claim(store, "anna", "call-1", "node-a", stale_after=3600) is False


def test_release_node_frees_only_that_nodes_employees(store: Store) -> None:
    claim(store, "anna", "call-1", "node-a")
    claim(store, "boris", "call-2", "node-b")
    store.people.release_node("node-a")
    assert claim(store, "anna", "call-3", "node-b") is True
    assert claim(store, "boris", "call-3", "node-a") is False


def test_two_nodes_claiming_one_employee_at_once_get_one_winner(store_url: str) -> None:
    node_a, node_b = two_stores(store_url)
    try:
        nodes = [node_a, node_b]
        for round_ in range(5):
            employee = f"emp-{round_}"

            def claim_for(i: int, employee: str = employee) -> bool:
                return claim(nodes[i], employee, f"call-{i}", f"node-{i}")

            won = run_together(2, claim_for)
            assert sorted(won) == [False, True]
    finally:
        node_a.close()
        node_b.close()


# -- round-robin cursor ----------------------------------------------------------------------


def test_queue_cursor_starts_at_zero_and_keeps_the_last_value(store: Store) -> None:
    assert store.queues.cursor("sales") == 0
    store.queues.set_cursor("sales", 3)
    store.queues.set_cursor("sales", 4)
    store.queues.set_cursor("support", 1)
    assert store.queues.cursor("sales") == 4
    assert store.queues.cursor("support") == 1


def test_two_nodes_advancing_the_cursor_at_once_never_share_a_start(store_url: str) -> None:
    """An `evenly` rotation shared by two nodes: each advance sees the one before it."""
    node_a, node_b = two_stores(store_url)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            starts = list(
                pool.map(
                    lambda i: (node_a, node_b)[i % 2].queues.advance("sales", lambda c: c + 1),
                    range(40),
                )
            )
        assert sorted(starts) == list(range(40))
        assert node_a.queues.cursor("sales") == 40
    finally:
        node_a.close()
        node_b.close()


# -- recording quota -------------------------------------------------------------------------


def test_recording_quota_stops_at_the_limit_per_period(store: Store) -> None:
    quota = store.quota
    assert [quota.try_consume("2026-11", limit=2) for _ in range(3)] == [True, True, False]
    assert quota.used("2026-11") == 2
    # A new month starts from zero.
    assert quota.try_consume("2026-12", limit=2) is True
    assert quota.used("2026-12") == 1
    assert quota.used("2027-01") == 0


def test_unlimited_recordings_are_still_counted(store: Store) -> None:
    assert all(store.quota.try_consume("2026-11", limit=None) for _ in range(3))
    assert store.quota.used("2026-11") == 3


def test_a_zero_limit_allows_nothing(store: Store) -> None:
    assert store.quota.try_consume("2026-11", limit=0) is False
    assert store.quota.used("2026-11") == 0


def test_concurrent_recordings_never_exceed_the_quota(store_url: str) -> None:
    # Two nodes share the 15 concurrent consumers; the period row does not exist yet, so the
    # race covers its creation too.
    node_a, node_b = two_stores(store_url)
    try:
        nodes = [node_a, node_b]
        granted = run_together(15, lambda i: nodes[i % 2].quota.try_consume("2026-11", limit=10))
        assert granted.count(True) == 10
        assert node_a.quota.used("2026-11") == 10
    finally:
        node_a.close()
        node_b.close()


# -- callbacks -------------------------------------------------------------------------------


def add_job(
    store: Store, *, phone: str = "+33612345678", attempts: int = 3, due: datetime = T0
) -> str:
    job = store.callbacks.add(
        number="paris", phone=phone, attempts=attempts, delay=300, due_at=due, reason="missed"
    )
    return job.id


def claim_due(store: Store, now: datetime, node: str, **kwargs: Any) -> CallbackJob | None:
    return store.callbacks.claim_due(now, node=node, **kwargs)


def test_callback_jobs_round_trip_with_aware_utc_datetimes(store: Store) -> None:
    added = store.callbacks.add(
        number="paris", phone="+33612345678", attempts=3, delay=300, due_at=T0, reason="missed"
    )
    assert added.due_at == T0 and is_utc(added.due_at)
    assert is_utc(added.created_at) and is_utc(added.updated_at)
    assert added.status is CallbackStatus.PENDING
    assert store.callbacks.jobs() == [added]
    claimed = claim_due(store, T0, "node-a")
    assert claimed is not None and is_utc(claimed.claimed_at)
    assert claimed.claimed_at == T0 and claimed.status is CallbackStatus.IN_PROGRESS


def test_callbacks_are_listed_newest_first_as_pending(store: Store) -> None:
    first = add_job(store, phone="+33600000001")
    second = add_job(store, phone="+33600000002")
    jobs = store.callbacks.jobs()
    assert [job.id for job in jobs] == [second, first]
    job = jobs[1]
    assert job.number == "paris" and job.phone == "+33600000001"
    assert job.status is CallbackStatus.PENDING and job.attempts == 3 and job.attempts_made == 0
    assert job.delay == 300 and job.reason == "missed"
    assert job.to_json()["due_at"] == "2026-11-27T08:00:00+00:00"
    assert job.to_json()["status"] == "pending" and job.to_json()["claimed_at"] is None


def test_add_callback_refuses_nonsense(store: Store) -> None:
    with pytest.raises(ValueError):
        add_job(store, attempts=0)
    with pytest.raises(ValueError):
        add_job(store, due=datetime(2026, 11, 27, 9))
    assert store.callbacks.jobs() == []


def test_naive_datetimes_are_refused_rather_than_guessed(store: Store) -> None:
    naive = datetime(2026, 11, 27, 9)
    with pytest.raises(ValueError, match="since"):
        store.calls.recent(since=naive)
    with pytest.raises(ValueError, match="now"):
        claim_due(store, naive, "node-a")
    with pytest.raises(ValueError, match="changed_at"):
        store.numbers.set_state("paris", NumberStatus.ACTIVE, undo_token=None, changed_at=naive)
    with pytest.raises(ValueError, match="started_at"):
        store.calls.save(call_details(started_at=naive))


def test_only_due_callbacks_are_claimed_and_only_once(store: Store) -> None:
    job_id = add_job(store)
    assert claim_due(store, T0 - timedelta(seconds=1), "node-a") is None
    job = claim_due(store, T0, "node-a")
    assert job is not None and job.id == job_id
    assert job.status is CallbackStatus.IN_PROGRESS and job.node == "node-a"
    assert claim_due(store, T0 + timedelta(minutes=1), "node-b") is None


def test_the_most_overdue_callback_is_claimed_first(store: Store) -> None:
    later = add_job(store, due=T0)
    earlier = add_job(store, due=T0 - timedelta(minutes=5))
    claimed = [claim_due(store, T0, "node-a") for _ in range(2)]
    assert [job.id for job in claimed if job] == [earlier, later]


def test_a_failed_attempt_is_rescheduled_after_the_delay(store: Store) -> None:
    job_id = add_job(store)
    claim_due(store, T0, "node-a")
    store.callbacks.finish_attempt(job_id, success=False, now=T0 + timedelta(seconds=20))
    [job] = store.callbacks.jobs()
    assert job.status is CallbackStatus.PENDING and job.attempts_made == 1 and job.node is None
    assert job.due_at == T0 + timedelta(seconds=320)
    assert claim_due(store, T0 + timedelta(seconds=319), "node-a") is None
    assert claim_due(store, T0 + timedelta(seconds=320), "node-a") is not None


def test_a_successful_attempt_finishes_the_job(store: Store) -> None:
    job_id = add_job(store)
    claim_due(store, T0, "node-a")
    store.callbacks.finish_attempt(job_id, success=True, now=T0)
    [job] = store.callbacks.jobs()
    assert job.status is CallbackStatus.DONE and job.attempts_made == 1
    assert claim_due(store, T0 + timedelta(days=1), "node-a") is None


def test_a_job_fails_when_its_attempts_are_used_up(store: Store) -> None:
    job_id = add_job(store, attempts=2)
    now = T0
    for _ in range(2):
        assert claim_due(store, now, "node-a") is not None
        store.callbacks.finish_attempt(job_id, success=False, now=now)
        now += timedelta(seconds=300)
    [job] = store.callbacks.jobs()
    assert job.status is CallbackStatus.FAILED and job.attempts_made == 2
    assert claim_due(store, now + timedelta(days=1), "node-a") is None


def test_finishing_an_unknown_callback_is_an_error(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.callbacks.finish_attempt("nope", success=True, now=T0)


def test_a_job_given_back_is_pending_again_with_its_attempts_untouched(store: Store) -> None:
    job_id = add_job(store)
    claim_due(store, T0, "node-a")
    store.callbacks.give_back(job_id, node="node-b", now=T0)  # not node b's to give back
    assert store.callbacks.jobs()[0].status is CallbackStatus.IN_PROGRESS
    store.callbacks.give_back(job_id, node="node-a", now=T0)
    [job] = store.callbacks.jobs()
    assert (job.status, job.attempts_made, job.node) == (CallbackStatus.PENDING, 0, None)


def test_a_callback_abandoned_by_a_dead_node_is_claimed_again_after_its_lease(
    store: Store,
) -> None:
    job_id = add_job(store)
    claim_due(store, T0, "node-a", lease=60)
    assert claim_due(store, T0 + timedelta(seconds=59), "node-b", lease=60) is None
    job = claim_due(store, T0 + timedelta(seconds=61), "node-b", lease=60)
    assert job is not None and job.id == job_id and job.node == "node-b"


def test_a_restarted_node_requeues_its_callbacks_in_progress(store: Store) -> None:
    job_id = add_job(store)
    other = add_job(store)
    claim_due(store, T0, "node-a")
    claim_due(store, T0, "node-b")
    store.callbacks.requeue_node("node-a", now=T0)
    jobs = {job.id: job for job in store.callbacks.jobs()}
    assert jobs[job_id].status is CallbackStatus.PENDING and jobs[job_id].node is None
    assert jobs[other].node == "node-b"  # another node's attempt goes on
    again = claim_due(store, T0, "node-a")
    assert again is not None and again.id == job_id


def test_two_nodes_polling_at_once_get_the_job_once(store_url: str) -> None:
    node_a, node_b = two_stores(store_url)
    try:
        nodes = [node_a, node_b]
        for _ in range(5):
            job_id = add_job(node_a)
            got = run_together(2, lambda i: claim_due(nodes[i], T0, f"node-{i}"))
            assert [job.id for job in got if job is not None] == [job_id]
    finally:
        node_a.close()
        node_b.close()


# -- number lifecycle ------------------------------------------------------------------------


def test_a_number_is_active_until_its_state_changes(store: Store) -> None:
    initial = store.numbers.state("paris")
    assert (initial.status, initial.changed_at, initial.undo_token) == (
        NumberStatus.ACTIVE,
        None,
        None,
    )
    store.numbers.set_state(
        "paris", NumberStatus.PENDING_DISCONNECT, undo_token="tok", changed_at=T0
    )
    state = store.numbers.state("paris")
    assert (state.number, state.status, state.undo_token) == (
        "paris",
        NumberStatus.PENDING_DISCONNECT,
        "tok",
    )
    # Round trip: the same instant, aware and in UTC.
    assert state.changed_at == T0 and is_utc(state.changed_at)
    store.numbers.set_state("paris", NumberStatus.DISCONNECTED, undo_token=None, changed_at=T0)
    state = store.numbers.state("paris")
    assert state.status is NumberStatus.DISCONNECTED and state.undo_token is None
    assert store.numbers.state("lyon").status is NumberStatus.ACTIVE
    with pytest.raises(ValueError):
        store.numbers.set_state(
            "paris",
            "gone",  # type: ignore[arg-type]
            undo_token=None,
            changed_at=T0,
        )


# -- builtin CRM -----------------------------------------------------------------------------


def test_contacts_round_trip_found_by_phone_and_listed_newest_first(store: Store) -> None:
    anna = store.crm.add_contact(name="Client A", phone="+33611111111", responsible="anna")
    store.crm.add_contact(name="Client B", phone="+33622222222", responsible=None, kind="company")
    assert anna.name == "Client A" and anna.kind == "contact" and len(anna.id) == 32
    assert is_utc(anna.created_at)
    assert store.crm.contact("+33611111111") == anna
    assert store.crm.contact("+33699999999") is None
    assert [c.name for c in store.crm.contacts()] == ["Client B", "Client A"]
    assert anna.to_json() == {
        "id": anna.id,
        "name": "Client A",
        "phone": "+33611111111",
        "responsible": "anna",
        "kind": "contact",
        "created_at": anna.created_at.isoformat(),
    }


def test_adding_a_known_phone_updates_the_contact(store: Store) -> None:
    first = store.crm.add_contact(name="Client A", phone="+33611111111", responsible="anna")
    second = store.crm.add_contact(name="Client A2", phone="+33611111111", responsible="boris")
    assert second.id == first.id
    assert second.name == "Client A2" and second.responsible == "boris"
    assert len(store.crm.contacts()) == 1


def test_at_most_one_lead_per_phone(store: Store) -> None:
    lead, created = store.crm.add_lead(
        phone="+33611111111", source="CALL", responsible="anna", call_id="c1"
    )
    assert created is True and lead.source == "CALL" and lead.call_id == "c1"
    assert is_utc(lead.created_at)
    again, created = store.crm.add_lead(
        phone="+33611111111", source="CALL", responsible="boris", call_id="c2"
    )
    assert created is False and again == lead
    store.crm.add_lead(phone="+33622222222", source="CALL", responsible=None, call_id=None)
    assert [lead.phone for lead in store.crm.leads()] == ["+33622222222", "+33611111111"]
    assert lead.to_json() == {
        "id": lead.id,
        "phone": "+33611111111",
        "source": "CALL",
        "responsible": "anna",
        "call_id": "c1",
        "created_at": lead.created_at.isoformat(),
    }


def test_assign_lead_changes_the_responsible(store: Store) -> None:
    lead, _ = store.crm.add_lead(
        phone="+33611111111", source="CALL", responsible="anna", call_id=None
    )
    store.crm.assign_lead(lead.id, "boris")
    assert store.crm.leads()[0].responsible == "boris"
    with pytest.raises(NotFoundError):
        store.crm.assign_lead("nope", "boris")


def test_two_nodes_creating_the_same_lead_at_once_create_one(store_url: str) -> None:
    node_a, node_b = two_stores(store_url)
    try:
        nodes = [node_a, node_b]
        results = run_together(
            2,
            lambda i: nodes[i].crm.add_lead(
                phone="+33611111111", source="CALL", responsible=None, call_id=f"c{i}"
            ),
        )
        assert sorted(created for _, created in results) == [False, True]
        assert results[0][0].id == results[1][0].id
    finally:
        node_a.close()
        node_b.close()


# -- hold music ------------------------------------------------------------------------------


def test_hold_music_upload_is_remembered_per_number_and_can_be_cleared(store: Store) -> None:
    music = store.hold_music
    assert music.upload_path("paris") is None
    music.set_upload_path("paris", "/var/lib/numcfg/moh/paris-1")
    music.set_upload_path("paris", "/var/lib/numcfg/moh/paris-2")
    assert music.upload_path("paris") == "/var/lib/numcfg/moh/paris-2"
    assert music.upload_path("lyon") is None
    music.set_upload_path("paris", None)
    assert music.upload_path("paris") is None


# -- published configuration -----------------------------------------------------------------


def test_the_newest_published_config_wins(store: Store) -> None:
    assert store.config_versions.latest() is None
    first = store.config_versions.publish("version: 1\n# a\n")
    second = store.config_versions.publish("version: 1\n# b\n")
    assert second > first
    latest = store.config_versions.latest()
    assert latest is not None
    assert (latest.version, latest.text) == (second, "version: 1\n# b\n")
    assert is_utc(latest.published_at)
    assert abs(latest.published_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_only_postgresql_notifies(store_url: str) -> None:
    store = open_store(store_url)
    try:
        assert store.config_versions.notifies is store_url.startswith("postgresql")
    finally:
        store.close()


def test_publishing_notifies_listening_nodes_on_postgresql(pg_db_url: str) -> None:
    store = open_store(pg_db_url)
    try:
        with psycopg.connect(
            sa.make_url(pg_db_url).render_as_string(False), autocommit=True
        ) as conn:
            conn.execute(f"LISTEN {CONFIG_CHANNEL}")
            version = store.config_versions.publish("version: 1\n")
            notice = next(conn.notifies(timeout=5, stop_after=1))
        assert notice.channel == CONFIG_CHANNEL and notice.payload == str(version)
    finally:
        store.close()


async def test_the_store_listener_hears_each_publish_on_postgresql(pg_db_url: str) -> None:
    store = open_store(pg_db_url)
    try:
        async with store.config_versions.listen() as listener:
            version = store.config_versions.publish("version: 1\n")
            async with contextlib.aclosing(listener.versions(timeout=5)) as versions:
                heard = await anext(versions)
        assert heard == version
    finally:
        store.close()


# -- transcription jobs ----------------------------------------------------------------------


def transcribed_call(call_id: str, seconds: float = 10.0) -> CallDetails:
    return call_details(
        call_id,
        recording={"file": f"{call_id}.wav", "seconds": seconds},
        transcript_status="pending",
    )


def test_concurrent_transcriptions_never_exceed_the_monthly_cap(store_url: str) -> None:
    node_a, node_b = two_stores(store_url)
    try:
        for i in range(12):
            node_a.calls.save(transcribed_call(f"c{i}"))
        nodes = [node_a, node_b]
        charged = run_together(
            12,
            lambda i: nodes[i % 2].transcripts.charge(f"c{i}", period="2026-11", cap_seconds=60),
        )
        assert charged.count(True) == 6
        assert node_a.transcripts.used_seconds("2026-11") == 60.0
        skipped = [c for c in node_b.calls.recent() if c.transcript_status == "skipped_quota"]
        assert len(skipped) == 6
        # Charging again (a retry of a counted job) never counts twice.
        first = next(i for i, ok in enumerate(charged) if ok)
        assert node_a.transcripts.charge(f"c{first}", period="2026-11", cap_seconds=60)
        assert node_a.transcripts.used_seconds("2026-11") == 60.0
    finally:
        node_a.close()
        node_b.close()


def test_two_nodes_never_claim_the_same_transcription(store_url: str) -> None:
    node_a, node_b = two_stores(store_url)
    try:
        for i in range(6):
            node_a.calls.save(transcribed_call(f"c{i}"))
        nodes = [node_a, node_b]
        now = datetime.now(UTC)
        claimed = run_together(8, lambda i: nodes[i % 2].transcripts.claim_due(now, node=f"n{i}"))
        ids = [job.call_id for job in claimed if job is not None]
        assert sorted(ids) == sorted(f"c{i}" for i in range(6))
    finally:
        node_a.close()
        node_b.close()


def test_a_transcription_done_or_failed_is_in_the_call_details(store: Store) -> None:
    store.calls.save(transcribed_call("c1"))
    store.calls.save(transcribed_call("c2"))
    now = datetime.now(UTC)
    store.transcripts.finish("c1", text="bonjour", now=now)
    assert store.transcripts.fail("c2", error="boom", attempts=2, retry_in=60, now=now) == "pending"
    assert store.transcripts.claim_due(now, node="n") is None  # c2 waits for its retry
    assert store.transcripts.fail("c2", error="boom", attempts=2, retry_in=60, now=now) == "failed"
    done, failed = store.calls.get("c1"), store.calls.get("c2")
    assert done is not None and (done.transcript, done.transcript_status) == ("bonjour", "done")
    assert failed is not None and (failed.transcript, failed.transcript_status) == (None, "failed")
    store.calls.save(transcribed_call("c1"))  # the details saved again (a spool replayed)
    again = store.calls.get("c1")
    assert again is not None and again.transcript_status == "done"  # the worker's word stands
