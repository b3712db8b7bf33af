"""Store support for the CRM: pending operations, lead by phone, a call's crm field.

Runs on SQLite and on PostgreSQL (skipped where no server can be started).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asterisk_bridge.policy.types import CrmOpStatus, Direction, Disposition
from asterisk_bridge.store import CallDetails, NotFoundError, Store, open_store

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
PAYLOAD = {"phone": "+33612345678", "source": "CALL", "responsible": None, "call": {"id": "c1"}}


@pytest.fixture(params=["sqlite", "pg"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'numcfg.sqlite3'}"
    return str(request.getfixturevalue("pg_db_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def add_op(store: Store) -> str:
    return store.crm.add_pending(kind="lead", payload=PAYLOAD, due_at=T0)


def test_a_pending_operation_round_trips_with_aware_utc_datetimes(store: Store) -> None:
    op_id = add_op(store)
    (op,) = store.crm.pending()
    assert (op.id, op.kind, op.payload, op.status) == (op_id, "lead", PAYLOAD, CrmOpStatus.PENDING)
    assert op.due_at == T0 and op.due_at.utcoffset() == timedelta(0)
    assert op.created_at.utcoffset() == timedelta(0) and op.claimed_at is None
    (claimed,) = store.crm.claim_pending(T0)
    assert claimed.claimed_at == T0 and claimed.claimed_at.utcoffset() == timedelta(0)


def test_a_pending_operation_is_claimed_once_due(store: Store) -> None:
    op_id = add_op(store)
    assert store.crm.claim_pending(T0 - timedelta(seconds=1)) == []
    claimed = store.crm.claim_pending(T0)
    assert [(op.id, op.payload, op.attempts) for op in claimed] == [(op_id, PAYLOAD, 0)]
    # Claimed: another node polling now gets nothing.
    assert store.crm.claim_pending(T0) == []


def test_a_stale_claim_is_taken_over(store: Store) -> None:
    add_op(store)
    assert len(store.crm.claim_pending(T0, stale_after=60)) == 1
    assert store.crm.claim_pending(T0 + timedelta(seconds=30), stale_after=60) == []
    assert len(store.crm.claim_pending(T0 + timedelta(seconds=61), stale_after=60)) == 1


def test_a_failed_attempt_is_retried_later_then_given_up(store: Store) -> None:
    op_id = add_op(store)
    store.crm.claim_pending(T0)
    store.crm.retry_pending_later(op_id, error="HTTP 503", due_at=T0 + timedelta(minutes=1))
    assert store.crm.claim_pending(T0 + timedelta(seconds=59)) == []
    (op,) = store.crm.claim_pending(T0 + timedelta(minutes=1))
    assert (op.attempts, op.last_error) == (1, "HTTP 503")
    store.crm.retry_pending_later(op_id, error="still down", due_at=None)
    assert store.crm.claim_pending(T0 + timedelta(days=9)) == []
    assert [op.status for op in store.crm.pending()] == [CrmOpStatus.FAILED]
    assert store.crm.pending(CrmOpStatus.PENDING) == []
    assert len(store.crm.pending(CrmOpStatus.FAILED)) == 1


def test_finished_operations_are_forgotten(store: Store) -> None:
    op_id = add_op(store)
    store.crm.finish_pending(op_id)
    assert store.crm.pending() == []
    with pytest.raises(NotFoundError):
        store.crm.retry_pending_later(op_id, error="x", due_at=T0)


def test_two_nodes_polling_together_never_claim_the_same_operation(store_url: str) -> None:
    setup = open_store(store_url)
    for _ in range(20):
        add_op(setup)
    nodes = [open_store(store_url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(nodes)) as pool:
            batches = list(pool.map(lambda node: node.crm.claim_pending(T0, limit=20), nodes))
        ids = [op.id for batch in batches for op in batch]
        assert len(ids) == len(set(ids)) == 20
    finally:
        for node in [setup, *nodes]:
            node.close()


def test_find_lead_and_attach_crm_to_a_call(store: Store) -> None:
    lead, _created = store.crm.add_lead(
        phone="+33612345678", source="CALL", responsible=None, call_id="c1"
    )
    assert store.crm.lead("+33612345678") == lead
    assert store.crm.lead("+33612345600") is None
    crm = {"entity": "lead", "id": lead.id, "created": True}
    with pytest.raises(NotFoundError):
        store.calls.attach_crm("nope", crm)
    store.calls.save(
        CallDetails(
            id="c1",
            number="paris",
            direction=Direction.INCOMING,
            caller="+33612345678",
            callee="+33185000000",
            employee=None,
            started_at=T0,
            answered_at=None,
            ended_at=T0,
            duration=0,
            disposition=Disposition.MISSED,
            route=(),
            recording=None,
            recording_skipped=None,
            rating=None,
            transcript=None,
            crm=None,
        )
    )
    store.calls.attach_crm("c1", crm)
    saved = store.calls.get("c1")
    assert saved is not None and saved.crm == crm
