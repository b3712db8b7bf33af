"""Callback jobs: queued by missed calls or by hand, claimed by one node at a time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa

from asterisk_bridge.policy.types import CallbackStatus
from asterisk_bridge.store.engine import Database, NotFoundError, instant, new_id, utc_now
from asterisk_bridge.store.rows import CallbackJob
from asterisk_bridge.store.tables import callbacks

# A node that died mid-callback never finishes its attempt; after this long another node
# may run the job again. An attempt rings an employee then the client: minutes, not hours.
CALLBACK_STALE_AFTER_S: Final = 3600.0


class CallbackJobs:
    def __init__(self, *, db: Database) -> None:
        self._db = db

    def add(
        self,
        *,
        number: str,
        phone: str,
        attempts: int,
        delay: float,
        due_at: datetime,
        reason: str,
    ) -> CallbackJob:
        """Queue a callback job (first attempt at `due_at`)."""
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        if delay < 0:
            raise ValueError(f"delay must not be negative, not {delay}")
        job_id = new_id()
        now = utc_now()
        stmt = sa.insert(callbacks).values(
            id=job_id,
            number=number,
            phone=phone,
            reason=reason,
            attempts=attempts,
            attempts_made=0,
            delay=delay,
            status=CallbackStatus.PENDING.value,
            due_at=instant("due_at", due_at),
            created_at=now,
            updated_at=now,
        )
        with self._db.write() as conn:
            conn.execute(stmt)
            query = sa.select(callbacks).where(callbacks.c.id == job_id)
            return _job(conn.execute(query).mappings().one())

    def jobs(self) -> list[CallbackJob]:
        """All callback jobs, newest first."""
        query = sa.select(callbacks).order_by(callbacks.c.seq.desc())
        with self._db.read() as conn:
            return [_job(row) for row in conn.execute(query).mappings()]

    def claim_due(
        self, now: datetime, *, node: str, stale_after: float = CALLBACK_STALE_AFTER_S
    ) -> CallbackJob | None:
        """Mark the most overdue job as in progress on `node` and return it; None if none is due.

        A job left in progress longer than `stale_after` seconds (its node died) is due again.
        """
        now = instant("now", now)
        due = sa.or_(
            sa.and_(callbacks.c.status == CallbackStatus.PENDING, callbacks.c.due_at <= now),
            sa.and_(
                callbacks.c.status == CallbackStatus.IN_PROGRESS,
                callbacks.c.claimed_at < now - timedelta(seconds=stale_after),
            ),
        )
        pick = (
            sa.select(callbacks.c.seq)
            .where(due)
            .order_by(callbacks.c.due_at, callbacks.c.seq)
            .limit(1)
        )
        if self._db.is_postgresql:
            # Nodes polling together each lock a different job instead of queueing behind
            # the same row and then finding it taken.
            pick = pick.with_for_update(skip_locked=True)
        with self._db.write() as conn:
            seq = conn.execute(pick).scalar_one_or_none()
            if seq is None:
                return None
            # `due` again: the claim only counts if the job was still due when written.
            claim = (
                sa.update(callbacks)
                .where(callbacks.c.seq == seq, due)
                .values(
                    status=CallbackStatus.IN_PROGRESS.value,
                    node=node,
                    claimed_at=now,
                    updated_at=now,
                )
            )
            if conn.execute(claim).rowcount != 1:
                return None
            row = conn.execute(sa.select(callbacks).where(callbacks.c.seq == seq)).mappings().one()
            return _job(row)

    def give_back(self, job_id: str, *, node: str, now: datetime) -> None:
        """Give back a job claimed by `node` without trying it (the node is stopping): it
        is pending again, with its attempts untouched, for any node to take."""
        now = instant("now", now)
        with self._db.write() as conn:
            conn.execute(
                sa.update(callbacks)
                .where(
                    callbacks.c.id == job_id,
                    callbacks.c.status == CallbackStatus.IN_PROGRESS,
                    callbacks.c.node == node,
                )
                .values(**_unclaimed(now))
            )

    def requeue_node(self, node: str, *, now: datetime) -> None:
        """At start-up: the jobs this node still had in progress go back to pending, so
        they are retried now rather than after CALLBACK_STALE_AFTER_S."""
        now = instant("now", now)
        stmt = (
            sa.update(callbacks)
            .where(callbacks.c.node == node, callbacks.c.status == CallbackStatus.IN_PROGRESS)
            .values(**_unclaimed(now))
        )
        with self._db.write() as conn:
            conn.execute(stmt)

    def finish_attempt(self, job_id: str, *, success: bool, now: datetime) -> None:
        """Record one attempt: done on success, failed when attempts run out, else retry later."""
        now = instant("now", now)
        query = sa.select(callbacks).where(callbacks.c.id == job_id)
        if self._db.is_postgresql:
            # Lock the job so the read-modify-write of attempts_made cannot interleave.
            query = query.with_for_update()
        with self._db.write() as conn:
            job = conn.execute(query).mappings().first()
            if job is None:
                raise NotFoundError(f"no callback {job_id!r}")
            made = job["attempts_made"] + 1
            values: dict[str, Any] = {
                "attempts_made": made,
                "node": None,
                "claimed_at": None,
                "updated_at": now,
            }
            if success:
                values["status"] = CallbackStatus.DONE.value
            elif made >= job["attempts"]:
                values["status"] = CallbackStatus.FAILED.value
            else:
                values["status"] = CallbackStatus.PENDING.value
                values["due_at"] = now + timedelta(seconds=job["delay"])
            conn.execute(sa.update(callbacks).where(callbacks.c.id == job_id).values(**values))


def _unclaimed(now: datetime) -> dict[str, Any]:
    return {
        "status": CallbackStatus.PENDING.value,
        "node": None,
        "claimed_at": None,
        "updated_at": now,
    }


def _job(values: Mapping[str, Any]) -> CallbackJob:
    return CallbackJob(
        id=values["id"],
        number=values["number"],
        phone=values["phone"],
        reason=values["reason"],
        attempts=values["attempts"],
        attempts_made=values["attempts_made"],
        delay=values["delay"],
        status=CallbackStatus(values["status"]),
        due_at=values["due_at"],
        node=values["node"],
        claimed_at=values["claimed_at"],
        created_at=values["created_at"],
        updated_at=values["updated_at"],
    )
