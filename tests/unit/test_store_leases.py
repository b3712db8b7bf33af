"""Job leases (issue 16) on SQLite and PostgreSQL: a callback or transcription job taken by
a node that dies is taken over by another once its lease runs out, a lease renewed while
the work goes on is never taken, and only the node holding the lease finishes the job,
so it is done once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from asterisk_bridge.policy.types import CallbackStatus, Direction, Disposition, TranscriptStatus
from asterisk_bridge.store import CallDetails, Store, open_store
from asterisk_bridge.store.callbacks import CALLBACK_STALE_AFTER_S
from asterisk_bridge.store.tables import callbacks, metadata, transcription_jobs
from asterisk_bridge.store.transcripts import TRANSCRIPTION_STALE_AFTER_S
from tests.fixtures_pg import fresh_database

# Transcription jobs are due from when their call was saved (the real clock): the test's
# instants come after that.
T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
LEASE = 30.0


@pytest.fixture(scope="module")
def pg_store_db(pg_url: str) -> Iterator[str]:
    with fresh_database(pg_url) as url:
        open_store(url).close()
        yield url


@pytest.fixture(params=["sqlite", "pg"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'numcfg.sqlite3'}"
    else:
        url = str(request.getfixturevalue("pg_store_db"))
        tables = ", ".join(table.name for table in metadata.sorted_tables)
        engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
        with engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY")
        engine.dispose()
    opened = open_store(url)
    yield opened
    opened.close()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def a_callback(store: Store) -> str:
    job = store.callbacks.add(
        number="paris", phone="+33612345678", attempts=3, delay=300, due_at=T0, reason="missed"
    )
    return job.id


def a_transcription(store: Store, call_id: str = "call-1") -> str:
    """A recorded call saved with its transcript pending: its job is queued with it."""
    started = T0 - timedelta(hours=2)
    store.calls.save(
        CallDetails(
            id=call_id,
            number="paris",
            direction=Direction.INCOMING,
            caller="+33612345678",
            callee="+33185000000",
            employee="anna",
            started_at=started,
            answered_at=started + timedelta(seconds=5),
            ended_at=started + timedelta(seconds=14),
            duration=14,
            disposition=Disposition.ANSWERED,
            route=("queue:sales", "employee:anna"),
            recording={"file": f"{call_id}.wav", "seconds": 9.0},
            recording_skipped=None,
            rating=None,
            transcript=None,
            transcript_status=TranscriptStatus.PENDING.value,
            crm=None,
        )
    )
    return call_id


# -- callbacks ----------------------------------------------------------------------------


def test_a_claimed_callback_holds_its_lease_until_it_runs_out(store: Store) -> None:
    job_id = a_callback(store)
    job = store.callbacks.claim_due(T0, node="a", lease=LEASE)
    assert job is not None and job.lease_until == at(LEASE)
    assert store.callbacks.claim_due(at(LEASE - 1), node="b", lease=LEASE) is None
    taken = store.callbacks.claim_due(at(LEASE + 1), node="b", lease=LEASE)
    assert taken is not None and taken.id == job_id and taken.node == "b"
    assert taken.lease_until == at(2 * LEASE + 1)


def test_a_renewed_callback_lease_is_not_taken_over(store: Store) -> None:
    a_callback(store)
    store.callbacks.claim_due(T0, node="a", lease=LEASE)
    for second in (20, 40, 60, 80):  # node a keeps renewing while its attempt runs
        assert store.callbacks.renew(
            store.callbacks.jobs()[0].id, node="a", now=at(second), lease=LEASE
        )
        assert store.callbacks.claim_due(at(second + LEASE - 1), node="b", lease=LEASE) is None


def test_the_dead_nodes_late_finish_is_refused_and_the_job_done_once(store: Store) -> None:
    job_id = a_callback(store)
    store.callbacks.claim_due(T0, node="a", lease=LEASE)
    store.callbacks.claim_due(at(LEASE + 1), node="b", lease=LEASE)  # a's lease ran out
    assert store.callbacks.renew(job_id, node="a", now=at(LEASE + 2), lease=LEASE) is False
    assert store.callbacks.finish_attempt(job_id, success=True, now=at(LEASE + 3), node="b")
    # Node a was only cut off: its attempt comes back after b's and counts for nothing.
    assert not store.callbacks.finish_attempt(job_id, success=False, now=at(LEASE + 4), node="a")
    [job] = store.callbacks.jobs()
    assert (job.status, job.attempts_made, job.node) == (CallbackStatus.DONE, 1, None)
    assert job.lease_until is None
    assert store.callbacks.claim_due(at(10 * LEASE), node="c", lease=LEASE) is None


def test_a_kept_place_claimed_by_a_node_has_a_lease_too(store: Store) -> None:
    job = store.callbacks.add_for_call(
        number="paris",
        phone="+33612345678",
        attempts=1,
        delay=60,
        due_at=T0,
        reason="virtual_hold",
        call_id="c1",
        queue="sales",
        joined_at=T0,
    )
    assert job is not None
    held = store.callbacks.claim_held(job.id, node="a", now=T0, lease=LEASE)
    assert held is not None and held.lease_until == at(LEASE)
    taken = store.callbacks.claim_due(at(LEASE + 1), node="b", lease=LEASE)
    assert taken is not None and taken.id == job.id


def test_a_lease_must_be_positive(store: Store) -> None:
    a_callback(store)
    with pytest.raises(ValueError, match="lease"):
        store.callbacks.claim_due(T0, node="a", lease=0)
    with pytest.raises(ValueError, match="lease"):
        store.transcripts.claim_due(T0, node="a", lease=-1)


# -- transcriptions -----------------------------------------------------------------------


def test_a_transcription_of_a_dead_node_is_taken_over_after_its_lease(store: Store) -> None:
    call_id = a_transcription(store)
    job = store.transcripts.claim_due(T0, node="a", lease=LEASE)
    assert job is not None and job.lease_until == at(LEASE)
    assert store.transcripts.claim_due(at(LEASE - 1), node="b", lease=LEASE) is None
    assert store.transcripts.renew(call_id, node="a", now=at(LEASE - 1), lease=LEASE)
    assert store.transcripts.claim_due(at(2 * LEASE - 2), node="b", lease=LEASE) is None
    # Node a stops renewing (killed): b takes the job after the renewed lease ran out.
    taken = store.transcripts.claim_due(at(2 * LEASE), node="b", lease=LEASE)
    assert taken is not None and taken.node == "b"


def test_only_the_lease_holder_finishes_a_transcription(store: Store) -> None:
    call_id = a_transcription(store)
    store.transcripts.claim_due(T0, node="a", lease=LEASE)
    store.transcripts.claim_due(at(LEASE + 1), node="b", lease=LEASE)
    assert store.transcripts.renew(call_id, node="a", now=at(LEASE + 2), lease=LEASE) is False
    assert store.transcripts.finish(call_id, text="from b", now=at(LEASE + 3), node="b")
    assert not store.transcripts.finish(call_id, text="from a", now=at(LEASE + 4), node="a")
    late = store.transcripts.fail(
        call_id, error="late", attempts=3, retry_in=60, now=at(LEASE + 5), node="a"
    )
    assert late is None
    job = store.transcripts.get(call_id)
    assert job is not None
    assert (job.status, job.node, job.lease_until) == (TranscriptStatus.DONE, None, None)
    assert job.last_error is None and job.attempts_made == 0
    details = store.calls.get(call_id)
    assert details is not None and details.transcript == "from b"
    assert store.transcripts.claim_due(at(10 * LEASE), node="c", lease=LEASE) is None


# -- when the workers look again (next_due: they claim only once it has come) ---------------


def test_next_due_is_a_pending_jobs_due_time_then_a_claimed_ones_lease_end(store: Store) -> None:
    assert store.callbacks.next_due() is None
    a_callback(store)
    assert store.callbacks.next_due() == T0
    store.callbacks.claim_due(T0, node="a", lease=LEASE)
    assert store.callbacks.next_due() == at(LEASE)


def test_a_job_claimed_before_leases_is_due_when_its_claim_goes_stale(store: Store) -> None:
    """No lease_until (claimed by a release without leases): due CALLBACK_STALE_AFTER_S
    after its claim, which next_due must say, or a reading worker would never claim it."""
    job_id = a_callback(store)
    store.callbacks.claim_due(T0, node="gone", lease=LEASE)
    with store._db.write() as conn:  # as a release without leases left the row
        conn.execute(sa.update(callbacks).where(callbacks.c.id == job_id).values(lease_until=None))
    stale = T0 + timedelta(seconds=CALLBACK_STALE_AFTER_S)
    assert store.callbacks.next_due() == stale
    assert store.callbacks.claim_due(stale - timedelta(seconds=1), node="b", lease=LEASE) is None
    taken = store.callbacks.claim_due(stale + timedelta(seconds=1), node="b", lease=LEASE)
    assert taken is not None and taken.id == job_id


def test_a_transcription_claimed_before_leases_is_due_when_its_claim_goes_stale(
    store: Store,
) -> None:
    call_id = a_transcription(store)
    store.transcripts.claim_due(T0, node="gone", lease=LEASE)
    with store._db.write() as conn:  # as a release without leases left the row
        conn.execute(
            sa.update(transcription_jobs)
            .where(transcription_jobs.c.call_id == call_id)
            .values(lease_until=None)
        )
    assert store.transcripts.next_due() == T0 + timedelta(seconds=TRANSCRIPTION_STALE_AFTER_S)
