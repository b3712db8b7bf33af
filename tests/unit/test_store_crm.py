"""Store support for the CRM: pending operations, lead by phone, a call's crm field.

Runs on SQLite and on PostgreSQL (skipped where no server can be started).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asterisk_bridge.store import NotFoundError, Store, open_store

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


def test_a_pending_operation_is_claimed_once_due(store):
    op_id = store.add_crm_pending(kind="lead", payload=PAYLOAD, due_at=T0)
    assert store.claim_crm_pending(T0 - timedelta(seconds=1)) == []
    claimed = store.claim_crm_pending(T0)
    assert [(op["id"], op["payload"], op["attempts"]) for op in claimed] == [(op_id, PAYLOAD, 0)]
    # Claimed: another node polling now gets nothing.
    assert store.claim_crm_pending(T0) == []


def test_a_stale_claim_is_taken_over(store):
    store.add_crm_pending(kind="lead", payload=PAYLOAD, due_at=T0)
    assert len(store.claim_crm_pending(T0, stale_after=60)) == 1
    assert store.claim_crm_pending(T0 + timedelta(seconds=30), stale_after=60) == []
    assert len(store.claim_crm_pending(T0 + timedelta(seconds=61), stale_after=60)) == 1


def test_a_failed_attempt_is_retried_later_then_given_up(store):
    op_id = store.add_crm_pending(kind="lead", payload=PAYLOAD, due_at=T0)
    store.claim_crm_pending(T0)
    store.retry_crm_pending_later(op_id, error="HTTP 503", due_at=T0 + timedelta(minutes=1))
    assert store.claim_crm_pending(T0 + timedelta(seconds=59)) == []
    (op,) = store.claim_crm_pending(T0 + timedelta(minutes=1))
    assert (op["attempts"], op["last_error"]) == (1, "HTTP 503")
    store.retry_crm_pending_later(op_id, error="still down", due_at=None)
    assert store.claim_crm_pending(T0 + timedelta(days=9)) == []
    assert [op["status"] for op in store.list_crm_pending()] == ["failed"]
    assert store.list_crm_pending("pending") == []


def test_finished_operations_are_forgotten(store):
    op_id = store.add_crm_pending(kind="lead", payload=PAYLOAD, due_at=T0)
    store.finish_crm_pending(op_id)
    assert store.list_crm_pending() == []
    with pytest.raises(NotFoundError):
        store.retry_crm_pending_later(op_id, error="x", due_at=T0)


def test_two_nodes_polling_together_never_claim_the_same_operation(store_url):
    setup = open_store(store_url)
    for _ in range(20):
        setup.add_crm_pending(kind="lead", payload=PAYLOAD, due_at=T0)
    nodes = [open_store(store_url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(nodes)) as pool:
            batches = list(pool.map(lambda node: node.claim_crm_pending(T0, limit=20), nodes))
        ids = [op["id"] for batch in batches for op in batch]
        assert len(ids) == len(set(ids)) == 20
    finally:
        for node in [setup, *nodes]:
            node.close()


def test_find_lead_and_set_call_crm(store):
    lead, _created = store.add_lead(
        phone="+33612345678", source="CALL", responsible=None, call_id="c1"
    )
    assert store.find_lead("+33612345678") == lead
    assert store.find_lead("+33612345600") is None
    with pytest.raises(NotFoundError):
        store.set_call_crm("nope", {"entity": "lead", "id": lead["id"], "created": True})
