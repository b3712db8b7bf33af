"""Transcription jobs (SPEC section 10): one per recorded call, claimed by one node at a
time, retried on failure, within the monthly cap of transcribed minutes.

Every change of a job and the `transcript` / `transcript_status` of its call are written in
the same transaction, so the call details never disagree with the job.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from asterisk_bridge.policy.types import TranscriptStatus
from asterisk_bridge.store.engine import (
    JOB_LEASE_S,
    Database,
    NotFoundError,
    instant,
    renew_lease,
    utc_now,
)
from asterisk_bridge.store.rows import TranscriptionJob
from asterisk_bridge.store.tables import calls, transcription_jobs, transcription_usage

# A job claimed before leases existed (migration 0010) has none: past this it is taken
# for its dead node's. Longer than any one try may last (transcription.timeout).
TRANSCRIPTION_STALE_AFTER_S: Final = 6 * 3600.0

_jobs = transcription_jobs.c


def add_job(
    conn: Connection, db: Database, *, call_id: str, number: str | None, file: str, seconds: float
) -> None:
    """Queue the transcription of `call_id`'s recording, in the caller's transaction (the
    call's own save); a job that exists already is left as it is."""
    now = utc_now()
    stmt = (
        db.insert(transcription_jobs)
        .values(
            call_id=call_id,
            number=number,
            file=file,
            seconds=max(0.0, seconds),
            status=TranscriptStatus.PENDING.value,
            attempts_made=0,
            due_at=now,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[_jobs.call_id])
    )
    conn.execute(stmt)


class TranscriptionJobs:
    def __init__(self, *, db: Database) -> None:
        self._db = db

    def get(self, call_id: str) -> TranscriptionJob | None:
        query = sa.select(transcription_jobs).where(_jobs.call_id == call_id)
        with self._db.read() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _job(row)

    def claim_due(
        self, now: datetime, *, node: str, lease: float = JOB_LEASE_S
    ) -> TranscriptionJob | None:
        """Mark the oldest due job as in progress on `node`, held for `lease` seconds, and
        return it; None if none is. A job whose lease ran out (its node died) is due."""
        if lease <= 0:
            raise ValueError(f"a lease must be positive, not {lease}")
        now = instant("now", now)
        due = sa.or_(
            sa.and_(_jobs.status == TranscriptStatus.PENDING, _jobs.due_at <= now),
            sa.and_(
                _jobs.status == TranscriptStatus.IN_PROGRESS,
                sa.or_(
                    _jobs.lease_until < now,
                    sa.and_(
                        _jobs.lease_until.is_(None),
                        _jobs.claimed_at < now - timedelta(seconds=TRANSCRIPTION_STALE_AFTER_S),
                    ),
                ),
            ),
        )
        pick = sa.select(_jobs.call_id).where(due).order_by(_jobs.due_at, _jobs.call_id).limit(1)
        if self._db.is_postgresql:
            pick = pick.with_for_update(skip_locked=True)  # nodes polling together
        with self._db.write() as conn:
            call_id = conn.execute(pick).scalar_one_or_none()
            if call_id is None:
                return None
            claim = (
                sa.update(transcription_jobs)
                .where(_jobs.call_id == call_id, due)
                .values(
                    status=TranscriptStatus.IN_PROGRESS.value,
                    node=node,
                    claimed_at=now,
                    lease_until=now + timedelta(seconds=lease),
                    updated_at=now,
                )
            )
            if conn.execute(claim).rowcount != 1:
                return None
            return _job(_select_job(conn, call_id))

    def next_due(self) -> datetime | None:
        """The earliest time a job becomes due for `claim_due` (a pending job's `due_at`,
        an in-progress job's `lease_until`), None when there is no such job. The worker
        sleeps until then (wakeup.py), and claims (a write transaction) only once it has
        come; a job claimed before leases existed has no `lease_until`: it is due
        TRANSCRIPTION_STALE_AFTER_S after its claim."""
        pending, leased = _next_due_queries()
        with self._db.read() as conn:
            due = conn.execute(pending).scalar_one_or_none()
            lease_until, unleased_claim = conn.execute(leased).one()
        if unleased_claim is not None:
            unleased_claim += timedelta(seconds=TRANSCRIPTION_STALE_AFTER_S)
        return min((when for when in (due, lease_until, unleased_claim) if when), default=None)

    def charge(self, call_id: str, *, period: str, cap_seconds: float | None) -> bool:
        """Count the job's seconds toward `period`, within `cap_seconds` (None: no cap).

        True when counted (or counted by an earlier try); False when the cap leaves no room:
        the job and its call are then skipped_quota. Check and count are one guarded UPDATE,
        so concurrent jobs on several nodes never go past the cap together.
        """
        with self._db.write() as conn:
            job = _select_job(conn, call_id)
            if job["charged_period"] is not None:
                return True
            seconds = float(job["seconds"])
            conn.execute(
                self._db.insert(transcription_usage)
                .values(period=period, seconds=0.0)
                .on_conflict_do_nothing(index_elements=[transcription_usage.c.period])
            )
            usage = transcription_usage.c
            consume = (
                sa.update(transcription_usage)
                .where(usage.period == period)
                .values(seconds=usage.seconds + seconds)
            )
            if cap_seconds is not None:
                consume = consume.where(usage.seconds + seconds <= cap_seconds)
            now = utc_now()
            if conn.execute(consume).rowcount != 1:
                self._settle(conn, call_id, TranscriptStatus.SKIPPED_QUOTA, now=now)
                return False
            conn.execute(
                sa.update(transcription_jobs)
                .where(_jobs.call_id == call_id)
                .values(charged_period=period, updated_at=now)
            )
            return True

    def renew(self, call_id: str, *, node: str, now: datetime, lease: float = JOB_LEASE_S) -> bool:
        """Extend `node`'s hold on the job to `lease` seconds from `now`. False when the job
        is no longer in progress on `node` (its lease ran out and another node took it)."""
        return renew_lease(
            self._db,
            transcription_jobs,
            _held_by(call_id, node),
            now=instant("now", now),
            lease=lease,
        )

    def finish(self, call_id: str, *, text: str, now: datetime, node: str | None = None) -> bool:
        """The transcript is `text`: the job is done and the call details hold it.

        With `node`: only while the job is still in progress on `node`; False, and nothing
        written, once another node took it over (its transcript is the one kept).
        """
        now = instant("now", now)
        with self._db.write() as conn:
            job = _select_job(conn, call_id, lock=self._db.is_postgresql)
            if node is not None and not _is_held(job, node):
                return False
            self._settle(conn, call_id, TranscriptStatus.DONE, now=now, text=text)
            return True

    def fail(
        self,
        call_id: str,
        *,
        error: str,
        attempts: int,
        retry_in: float,
        now: datetime,
        node: str | None = None,
    ) -> TranscriptStatus | None:
        """Record a failed try: pending again `retry_in` seconds later, or failed for good
        once `attempts` tries were made (its counted seconds are given back then). With
        `node`: None, and nothing written, when another node took the job over."""
        now = instant("now", now)
        with self._db.write() as conn:
            job = _select_job(conn, call_id, lock=self._db.is_postgresql)
            if node is not None and not _is_held(job, node):
                return None
            made = job["attempts_made"] + 1
            if made < attempts:
                conn.execute(
                    sa.update(transcription_jobs)
                    .where(_jobs.call_id == call_id)
                    .values(
                        status=TranscriptStatus.PENDING.value,
                        attempts_made=made,
                        due_at=now + timedelta(seconds=retry_in),
                        node=None,
                        claimed_at=None,
                        lease_until=None,
                        last_error=error,
                        updated_at=now,
                    )
                )
                return TranscriptStatus.PENDING
            if job["charged_period"] is not None:
                usage = transcription_usage.c
                seconds = float(job["seconds"])
                refund = sa.case((usage.seconds > seconds, usage.seconds - seconds), else_=0.0)
                conn.execute(
                    sa.update(transcription_usage)
                    .where(usage.period == job["charged_period"])
                    .values(seconds=refund)
                )
            conn.execute(
                sa.update(transcription_jobs)
                .where(_jobs.call_id == call_id)
                .values(attempts_made=made, last_error=error, charged_period=None)
            )
            self._settle(conn, call_id, TranscriptStatus.FAILED, now=now)
            return TranscriptStatus.FAILED

    def give_back(self, call_id: str, *, node: str, now: datetime) -> None:
        """A job `node` claimed but did not finish (it is stopping): pending again, its
        attempts untouched, for any node to take."""
        now = instant("now", now)
        with self._db.write() as conn:
            conn.execute(
                sa.update(transcription_jobs)
                .where(_held_by(call_id, node))
                .values(**_unclaimed(now))
            )

    def requeue_node(self, node: str, *, now: datetime) -> None:
        """At start-up: the jobs this node had in progress when it stopped are due now."""
        now = instant("now", now)
        with self._db.write() as conn:
            conn.execute(
                sa.update(transcription_jobs)
                .where(_jobs.node == node, _jobs.status == TranscriptStatus.IN_PROGRESS)
                .values(**_unclaimed(now))
            )

    def used_seconds(self, period: str) -> float:
        """Seconds counted toward `period` so far."""
        query = sa.select(transcription_usage.c.seconds).where(
            transcription_usage.c.period == period
        )
        with self._db.read() as conn:
            used = conn.execute(query).scalar_one_or_none()
        return 0.0 if used is None else float(used)

    def _settle(
        self,
        conn: Connection,
        call_id: str,
        status: TranscriptStatus,
        *,
        now: datetime,
        text: str | None = None,
    ) -> None:
        conn.execute(
            sa.update(transcription_jobs)
            .where(_jobs.call_id == call_id)
            .values(
                status=status.value, node=None, claimed_at=None, lease_until=None, updated_at=now
            )
        )
        conn.execute(
            sa.update(calls)
            .where(calls.c.id == call_id)
            .values(transcript=text, transcript_status=status.public.value)
        )


def _select_job(conn: Connection, call_id: str, *, lock: bool = False) -> Mapping[str, Any]:
    query = sa.select(transcription_jobs).where(_jobs.call_id == call_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFoundError(f"no transcription job for call {call_id!r}")
    return row


def _held_by(call_id: str, node: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        _jobs.call_id == call_id, _jobs.status == TranscriptStatus.IN_PROGRESS, _jobs.node == node
    )


def _is_held(job: Mapping[str, Any], node: str) -> bool:
    return bool(job["status"] == TranscriptStatus.IN_PROGRESS and job["node"] == node)


def _unclaimed(now: datetime) -> dict[str, Any]:
    return {
        "status": TranscriptStatus.PENDING.value,
        "node": None,
        "claimed_at": None,
        "lease_until": None,
        "updated_at": now,
    }


def _job(values: Mapping[str, Any]) -> TranscriptionJob:
    return TranscriptionJob(
        call_id=values["call_id"],
        number=values["number"],
        file=values["file"],
        seconds=float(values["seconds"]),
        status=TranscriptStatus(values["status"]),
        attempts_made=values["attempts_made"],
        due_at=values["due_at"],
        node=values["node"],
        claimed_at=values["claimed_at"],
        charged_period=values["charged_period"],
        last_error=values["last_error"],
        created_at=values["created_at"],
        updated_at=values["updated_at"],
        lease_until=values["lease_until"],
    )


@functools.cache
def _next_due_queries() -> tuple[sa.Select[Any], sa.Select[Any]]:
    """The worker's look, run every few seconds when idle: built once (building it was a
    third of its CPU; issue 15). It takes no parameters."""
    pending = sa.select(sa.func.min(_jobs.due_at)).where(_jobs.status == TranscriptStatus.PENDING)
    leased = sa.select(
        sa.func.min(_jobs.lease_until),
        sa.func.min(sa.case((_jobs.lease_until.is_(None), _jobs.claimed_at))),
    ).where(_jobs.status == TranscriptStatus.IN_PROGRESS)
    return pending, leased
