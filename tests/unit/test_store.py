"""The store behaves the same on SQLite and PostgreSQL, including under concurrency.

Every test that takes `store` runs once per backend. The PostgreSQL runs use a throwaway
server (tests/pgserver.py) and a fresh database per test; they skip where no server can be
started.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
import sqlalchemy as sa

from asterisk_bridge.store import CONFIG_CHANNEL, NotFoundError, Store, open_store
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


def call_record(call_id: str = "c1", **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": call_id,
        "number": "paris",
        "direction": "incoming",
        "caller": "+33612345678",
        "callee": "+33185000000",
        "employee": "anna",
        "started_at": "2026-11-27T09:00:00+01:00",
        "answered_at": "2026-11-27T09:00:05+01:00",
        "ended_at": "2026-11-27T09:00:47+01:00",
        "duration": 42,
        "disposition": "answered",
        "route": ["warning", "greeting", "ivr:main:1", "queue:sales", "employee:anna"],
        "recording": {"file": "/rec/c1.wav", "seconds": 40},
        "recording_skipped": None,
        "rating": None,
        "transcript": None,
        "crm": {"entity": "lead", "id": "17", "created": True},
    }
    record.update(changes)
    return record


def run_together(count: int, action: Callable[[int], T]) -> list[T]:
    """Run `action(i)` in `count` threads released at the same instant."""
    barrier = threading.Barrier(count)

    def worker(index: int) -> T:
        barrier.wait()
        return action(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(worker, range(count)))


# -- opening ---------------------------------------------------------------------------------


def test_ping_answers_true_on_a_reachable_store(store: Store) -> None:
    assert store.ping() is True


def test_ping_answers_false_instead_of_raising_when_the_server_is_down() -> None:
    # Port 1 on localhost: connection refused at once.
    engine = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert Store(engine=engine).ping() is False


def test_reopening_keeps_the_data_and_the_tables(store_url: str) -> None:
    first = open_store(store_url)
    first.set_workday("anna", "working")
    first.close()
    second = open_store(store_url)
    assert second.get_workday("anna") == "working"
    second.close()


def test_nodes_starting_together_on_an_empty_postgresql_both_open_it(
    pg_db_url: str,
) -> None:
    stores = run_together(3, lambda _: open_store(pg_db_url))
    stores[0].set_workday("anna", "working")
    assert [s.get_workday("anna") for s in stores] == ["working"] * 3
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


def test_a_saved_call_reads_back_in_the_spec_shape_with_utc_times(store: Store) -> None:
    store.save_call(call_record())
    call = store.get_call("c1")
    assert call == call_record(
        started_at="2026-11-27T08:00:00+00:00",
        answered_at="2026-11-27T08:00:05+00:00",
        ended_at="2026-11-27T08:00:47+00:00",
    )
    assert list(call) == list(call_record())


def test_save_call_accepts_aware_datetimes_and_nulls(store: Store) -> None:
    store.save_call(
        call_record(
            started_at=T0,
            answered_at=None,
            ended_at=T0 + timedelta(seconds=30),
            employee=None,
            disposition="missed",
            route=[],
            recording=None,
            recording_skipped="quota",
            crm=None,
        )
    )
    call = store.get_call("c1")
    assert call is not None
    assert datetime.fromisoformat(call["started_at"]) == T0
    assert call["answered_at"] is None
    assert call["recording"] is None and call["crm"] is None and call["route"] == []
    assert call["recording_skipped"] == "quota"


def test_save_call_replaces_the_record_with_the_same_id(store: Store) -> None:
    store.save_call(call_record(disposition="missed"))
    store.save_call(call_record(disposition="answered", rating=4))
    assert len(store.list_calls()) == 1
    call = store.get_call("c1")
    assert call is not None and call["disposition"] == "answered" and call["rating"] == 4


def test_calls_left_open_by_a_killed_node_are_closed_with_their_details(store: Store) -> None:
    talking = call_record("c1", ended_at=None, disposition=None, route=["queue:sales"])
    ringing = call_record("c2", answered_at=None, employee=None, ended_at=None, route=[])
    other_node = call_record("c3", ended_at=None)
    store.open_call(talking, node="host/numcfg")
    store.open_call(ringing, node="host/numcfg")
    store.open_call(other_node, node="host/numcfg-b")
    assert store.list_calls() == []  # calls in progress are not call details yet
    now = datetime(2026, 11, 27, 8, 1, 5, tzinfo=UTC)
    assert sorted(store.close_interrupted_calls(node="host/numcfg", now=now)) == ["c1", "c2"]
    c1, c2 = store.get_call("c1"), store.get_call("c2")
    assert c1 is not None and c2 is not None
    assert (c1["disposition"], c1["duration"], c1["route"]) == (
        "answered",
        60,
        ["queue:sales", "interrupted"],
    )
    assert (c2["disposition"], c2["ended_at"]) == ("failed", "2026-11-27T08:01:05+00:00")
    assert store.get_call("c3") is None  # another node's calls are its own business
    assert store.close_interrupted_calls(node="host/numcfg", now=now) == []


def test_a_finished_call_is_no_longer_open(store: Store) -> None:
    store.open_call(call_record("c1", ended_at=None), node="n")
    store.save_call(call_record("c1"))
    assert store.close_interrupted_calls(node="n", now=datetime.now(UTC)) == []
    assert store.get_call("c1") == store.list_calls()[0]


def test_get_call_of_an_unknown_id_is_none(store: Store) -> None:
    assert store.get_call("nope") is None


@pytest.mark.parametrize(
    "bad",
    [
        {"extra": 1},
        {"started_at": "2026-11-27T09:00:00"},
        {"started_at": datetime(2026, 11, 27, 9)},
        {"started_at": "yesterday"},
        {"started_at": None},
        {"route": "queue:sales"},
    ],
)
def test_save_call_refuses_malformed_records(store: Store, bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        store.save_call(call_record(**bad))
    assert store.get_call("c1") is None


def test_save_call_refuses_a_record_missing_a_key(store: Store) -> None:
    record = call_record()
    del record["transcript"]
    with pytest.raises(ValueError, match="transcript"):
        store.save_call(record)


def test_list_calls_is_newest_first_and_filters_by_number_since_and_limit(store: Store) -> None:
    for minute, (call_id, number) in enumerate([("a", "paris"), ("b", "lyon"), ("c", "paris")]):
        store.save_call(
            call_record(call_id, number=number, started_at=T0 + timedelta(minutes=minute))
        )
    assert [c["id"] for c in store.list_calls()] == ["c", "b", "a"]
    assert [c["id"] for c in store.list_calls(number="paris")] == ["c", "a"]
    assert [c["id"] for c in store.list_calls(since=T0 + timedelta(minutes=1))] == ["c", "b"]
    assert [c["id"] for c in store.list_calls(limit=1)] == ["c"]
    # `since` is an instant: the same moment written in UTC selects the same calls.
    since_utc = (T0 + timedelta(minutes=1)).astimezone(UTC)
    assert [c["id"] for c in store.list_calls(number="paris", since=since_utc)] == ["c"]
    with pytest.raises(ValueError):
        store.list_calls(limit=0)


def test_set_call_rating_stores_the_digit_and_rejects_unknown_calls(store: Store) -> None:
    store.save_call(call_record())
    store.set_call_rating("c1", 5)
    call = store.get_call("c1")
    assert call is not None and call["rating"] == 5
    with pytest.raises(NotFoundError):
        store.set_call_rating("nope", 3)
    with pytest.raises(ValueError):
        store.set_call_rating("c1", 6)


# -- workday ---------------------------------------------------------------------------------


def test_workday_state_is_none_until_started_then_follows_changes(store: Store) -> None:
    assert store.get_workday("anna") is None
    store.set_workday("anna", "working")
    store.set_workday("boris", "working")
    store.set_workday("anna", "paused")
    assert store.get_workday("anna") == "paused"
    assert store.workdays() == {"anna": "paused", "boris": "working"}
    with pytest.raises(ValueError):
        store.set_workday("anna", "lunch")


# -- employee claims -------------------------------------------------------------------------


def test_a_claimed_employee_is_refused_to_other_calls_until_released(store: Store) -> None:
    assert store.claim_employee("anna", "call-1", "node-a") is True
    assert store.claim_employee("anna", "call-2", "node-b") is False
    # Claiming again for the same call is not a conflict.
    assert store.claim_employee("anna", "call-1", "node-a") is True
    # Only the holder releases.
    store.release_employee("anna", "call-2")
    assert store.claim_employee("anna", "call-2", "node-b") is False
    store.release_employee("anna", "call-1")
    assert store.claim_employee("anna", "call-2", "node-b") is True


def test_claims_are_per_employee(store: Store) -> None:
    assert store.claim_employee("anna", "call-1", "node-a") is True
    assert store.claim_employee("boris", "call-2", "node-a") is True


def test_a_stale_claim_is_taken_over(store: Store) -> None:
    assert store.claim_employee("anna", "call-1", "node-a") is True
    assert store.claim_employee("anna", "call-2", "node-b", stale_after=3600) is False
    threading.Event().wait(0.01)  # so the first claim is strictly older than "now - 0"
    assert store.claim_employee("anna", "call-2", "node-b", stale_after=0) is True
    assert store.claim_employee("anna", "call-1", "node-a", stale_after=3600) is False


def test_release_node_claims_frees_only_that_nodes_employees(store: Store) -> None:
    store.claim_employee("anna", "call-1", "node-a")
    store.claim_employee("boris", "call-2", "node-b")
    store.release_node_claims("node-a")
    assert store.claim_employee("anna", "call-3", "node-b") is True
    assert store.claim_employee("boris", "call-3", "node-a") is False


def test_two_nodes_claiming_one_employee_at_once_get_one_winner(store_url: str) -> None:
    node_a, node_b = two_stores(store_url)
    try:
        nodes = [node_a, node_b]
        for round_ in range(5):
            employee = f"emp-{round_}"

            def claim(i: int, employee: str = employee) -> bool:
                return nodes[i].claim_employee(employee, f"call-{i}", f"node-{i}")

            won = run_together(2, claim)
            assert sorted(won) == [False, True]
    finally:
        node_a.close()
        node_b.close()


# -- round-robin cursor ----------------------------------------------------------------------


def test_queue_cursor_starts_at_zero_and_keeps_the_last_value(store: Store) -> None:
    assert store.get_cursor("sales") == 0
    store.set_cursor("sales", 3)
    store.set_cursor("sales", 4)
    store.set_cursor("support", 1)
    assert store.get_cursor("sales") == 4
    assert store.get_cursor("support") == 1


# -- recording quota -------------------------------------------------------------------------


def test_recording_quota_stops_at_the_limit_per_period(store: Store) -> None:
    assert [store.try_consume_recording("2026-11", 2) for _ in range(3)] == [True, True, False]
    assert store.recordings_used("2026-11") == 2
    # A new month starts from zero.
    assert store.try_consume_recording("2026-12", 2) is True
    assert store.recordings_used("2026-12") == 1
    assert store.recordings_used("2027-01") == 0


def test_unlimited_recordings_are_still_counted(store: Store) -> None:
    assert all(store.try_consume_recording("2026-11", None) for _ in range(3))
    assert store.recordings_used("2026-11") == 3


def test_a_zero_limit_allows_nothing(store: Store) -> None:
    assert store.try_consume_recording("2026-11", 0) is False
    assert store.recordings_used("2026-11") == 0


def test_concurrent_recordings_never_exceed_the_quota(store_url: str) -> None:
    # Two nodes share the 15 concurrent consumers; the period row does not exist yet, so the
    # race covers its creation too.
    node_a, node_b = two_stores(store_url)
    try:
        nodes = [node_a, node_b]
        granted = run_together(15, lambda i: nodes[i % 2].try_consume_recording("2026-11", 10))
        assert granted.count(True) == 10
        assert node_a.recordings_used("2026-11") == 10
    finally:
        node_a.close()
        node_b.close()


# -- callbacks -------------------------------------------------------------------------------


def add_job(
    store: Store, *, phone: str = "+33612345678", attempts: int = 3, due: datetime = T0
) -> str:
    return store.add_callback(
        number="paris", phone=phone, attempts=attempts, delay=300, due_at=due, reason="missed"
    )


def test_callbacks_are_listed_newest_first_as_pending(store: Store) -> None:
    first = add_job(store, phone="+33600000001")
    second = add_job(store, phone="+33600000002")
    jobs = store.list_callbacks()
    assert [job["id"] for job in jobs] == [second, first]
    job = jobs[1]
    assert job["number"] == "paris" and job["phone"] == "+33600000001"
    assert job["status"] == "pending" and job["attempts"] == 3 and job["attempts_made"] == 0
    assert job["delay"] == 300 and job["reason"] == "missed"
    assert job["due_at"] == "2026-11-27T08:00:00+00:00"


def test_add_callback_refuses_nonsense(store: Store) -> None:
    with pytest.raises(ValueError):
        add_job(store, attempts=0)
    with pytest.raises(ValueError):
        add_job(store, due=datetime(2026, 11, 27, 9))
    assert store.list_callbacks() == []


def test_naive_datetimes_are_refused_rather_than_guessed(store: Store) -> None:
    naive = datetime(2026, 11, 27, 9)
    with pytest.raises(ValueError, match="since"):
        store.list_calls(since=naive)
    with pytest.raises(ValueError, match="now"):
        store.claim_due_callback(naive, "node-a")
    with pytest.raises(ValueError, match="changed_at"):
        store.set_number_state("paris", "active", undo_token=None, changed_at=naive)


def test_only_due_callbacks_are_claimed_and_only_once(store: Store) -> None:
    job_id = add_job(store)
    assert store.claim_due_callback(T0 - timedelta(seconds=1), "node-a") is None
    job = store.claim_due_callback(T0, "node-a")
    assert job is not None and job["id"] == job_id
    assert job["status"] == "in_progress" and job["node"] == "node-a"
    assert store.claim_due_callback(T0 + timedelta(minutes=1), "node-b") is None


def test_the_most_overdue_callback_is_claimed_first(store: Store) -> None:
    later = add_job(store, due=T0)
    earlier = add_job(store, due=T0 - timedelta(minutes=5))
    claimed = [store.claim_due_callback(T0, "node-a") for _ in range(2)]
    assert [job["id"] for job in claimed if job] == [earlier, later]


def test_a_failed_attempt_is_rescheduled_after_the_delay(store: Store) -> None:
    job_id = add_job(store)
    store.claim_due_callback(T0, "node-a")
    store.finish_callback_attempt(job_id, success=False, now=T0 + timedelta(seconds=20))
    [job] = store.list_callbacks()
    assert job["status"] == "pending" and job["attempts_made"] == 1 and job["node"] is None
    assert datetime.fromisoformat(job["due_at"]) == T0 + timedelta(seconds=320)
    assert store.claim_due_callback(T0 + timedelta(seconds=319), "node-a") is None
    assert store.claim_due_callback(T0 + timedelta(seconds=320), "node-a") is not None


def test_a_successful_attempt_finishes_the_job(store: Store) -> None:
    job_id = add_job(store)
    store.claim_due_callback(T0, "node-a")
    store.finish_callback_attempt(job_id, success=True, now=T0)
    [job] = store.list_callbacks()
    assert job["status"] == "done" and job["attempts_made"] == 1
    assert store.claim_due_callback(T0 + timedelta(days=1), "node-a") is None


def test_a_job_fails_when_its_attempts_are_used_up(store: Store) -> None:
    job_id = add_job(store, attempts=2)
    now = T0
    for _ in range(2):
        assert store.claim_due_callback(now, "node-a") is not None
        store.finish_callback_attempt(job_id, success=False, now=now)
        now += timedelta(seconds=300)
    [job] = store.list_callbacks()
    assert job["status"] == "failed" and job["attempts_made"] == 2
    assert store.claim_due_callback(now + timedelta(days=1), "node-a") is None


def test_finishing_an_unknown_callback_is_an_error(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.finish_callback_attempt("nope", success=True, now=T0)


def test_a_callback_abandoned_by_a_dead_node_is_claimed_again_later(store: Store) -> None:
    job_id = add_job(store)
    store.claim_due_callback(T0, "node-a")
    assert store.claim_due_callback(T0 + timedelta(minutes=30), "node-b", stale_after=3600) is None
    job = store.claim_due_callback(T0 + timedelta(hours=2), "node-b", stale_after=3600)
    assert job is not None and job["id"] == job_id and job["node"] == "node-b"


def test_a_restarted_node_requeues_its_callbacks_in_progress(store: Store) -> None:
    job_id = add_job(store)
    store.claim_due_callback(T0, "node-a")
    store.release_node_claims("node-a")
    [job] = store.list_callbacks()
    assert job["status"] == "pending" and job["node"] is None
    again = store.claim_due_callback(T0, "node-a")
    assert again is not None and again["id"] == job_id


def test_two_nodes_polling_at_once_get_the_job_once(store_url: str) -> None:
    node_a, node_b = two_stores(store_url)
    try:
        nodes = [node_a, node_b]
        for _ in range(5):
            job_id = add_job(node_a)
            got = run_together(2, lambda i: nodes[i].claim_due_callback(T0, f"node-{i}"))
            assert [job["id"] for job in got if job is not None] == [job_id]
    finally:
        node_a.close()
        node_b.close()


# -- number lifecycle ------------------------------------------------------------------------


def test_a_number_is_active_until_its_state_changes(store: Store) -> None:
    assert store.get_number_state("paris") == {
        "status": "active",
        "changed_at": None,
        "undo_token": None,
    }
    store.set_number_state("paris", "pending_disconnect", undo_token="tok", changed_at=T0)
    assert store.get_number_state("paris") == {
        "status": "pending_disconnect",
        "changed_at": "2026-11-27T08:00:00+00:00",
        "undo_token": "tok",
    }
    store.set_number_state("paris", "disconnected", undo_token=None, changed_at=T0)
    state = store.get_number_state("paris")
    assert state["status"] == "disconnected" and state["undo_token"] is None
    assert store.get_number_state("lyon")["status"] == "active"
    with pytest.raises(ValueError):
        store.set_number_state("paris", "gone", undo_token=None, changed_at=T0)


# -- builtin CRM -----------------------------------------------------------------------------


def test_contacts_are_found_by_phone_and_listed_newest_first(store: Store) -> None:
    anna = store.add_contact(name="Client A", phone="+33611111111", responsible="anna")
    store.add_contact(name="Client B", phone="+33622222222", responsible=None, kind="company")
    assert anna["name"] == "Client A" and anna["kind"] == "contact" and len(anna["id"]) == 32
    assert store.find_contact("+33611111111") == anna
    assert store.find_contact("+33699999999") is None
    assert [c["name"] for c in store.list_contacts()] == ["Client B", "Client A"]


def test_adding_a_known_phone_updates_the_contact(store: Store) -> None:
    first = store.add_contact(name="Client A", phone="+33611111111", responsible="anna")
    second = store.add_contact(name="Client A2", phone="+33611111111", responsible="boris")
    assert second["id"] == first["id"]
    assert second["name"] == "Client A2" and second["responsible"] == "boris"
    assert len(store.list_contacts()) == 1


def test_at_most_one_lead_per_phone(store: Store) -> None:
    lead, created = store.add_lead(
        phone="+33611111111", source="CALL", responsible="anna", call_id="c1"
    )
    assert created is True and lead["source"] == "CALL" and lead["call_id"] == "c1"
    again, created = store.add_lead(
        phone="+33611111111", source="CALL", responsible="boris", call_id="c2"
    )
    assert created is False and again == lead
    store.add_lead(phone="+33622222222", source="CALL", responsible=None, call_id=None)
    assert [lead["phone"] for lead in store.list_leads()] == ["+33622222222", "+33611111111"]


def test_assign_lead_changes_the_responsible(store: Store) -> None:
    lead, _ = store.add_lead(phone="+33611111111", source="CALL", responsible="anna", call_id=None)
    store.assign_lead(lead["id"], "boris")
    assert store.list_leads()[0]["responsible"] == "boris"
    with pytest.raises(NotFoundError):
        store.assign_lead("nope", "boris")


def test_two_nodes_creating_the_same_lead_at_once_create_one(store_url: str) -> None:
    node_a, node_b = two_stores(store_url)
    try:
        nodes = [node_a, node_b]
        results = run_together(
            2,
            lambda i: nodes[i].add_lead(
                phone="+33611111111", source="CALL", responsible=None, call_id=f"c{i}"
            ),
        )
        assert sorted(created for _, created in results) == [False, True]
        assert results[0][0]["id"] == results[1][0]["id"]
    finally:
        node_a.close()
        node_b.close()


# -- hold music ------------------------------------------------------------------------------


def test_hold_music_upload_is_remembered_per_number_and_can_be_cleared(store: Store) -> None:
    assert store.get_hold_music("paris") is None
    store.set_hold_music("paris", "/var/lib/numcfg/moh/paris-1")
    store.set_hold_music("paris", "/var/lib/numcfg/moh/paris-2")
    assert store.get_hold_music("paris") == "/var/lib/numcfg/moh/paris-2"
    assert store.get_hold_music("lyon") is None
    store.set_hold_music("paris", None)
    assert store.get_hold_music("paris") is None


# -- published configuration -----------------------------------------------------------------


def test_the_newest_published_config_wins(store: Store) -> None:
    assert store.latest_config() is None
    first = store.publish_config("version: 1\n# a\n")
    second = store.publish_config("version: 1\n# b\n")
    assert second > first
    assert store.latest_config() == (second, "version: 1\n# b\n")


def test_publishing_notifies_listening_nodes_on_postgresql(pg_db_url: str) -> None:
    store = open_store(pg_db_url)
    try:
        with psycopg.connect(
            sa.make_url(pg_db_url).render_as_string(False), autocommit=True
        ) as conn:
            conn.execute(f"LISTEN {CONFIG_CHANNEL}")
            version = store.publish_config("version: 1\n")
            notice = next(conn.notifies(timeout=5, stop_after=1))
        assert notice.channel == CONFIG_CHANNEL and notice.payload == str(version)
    finally:
        store.close()
