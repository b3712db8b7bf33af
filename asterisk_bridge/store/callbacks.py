"""Callback jobs: queued by missed calls or by hand, claimed by one node at a time."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa

from asterisk_bridge.policy.types import CallbackStatus
from asterisk_bridge.store.engine import (
    JOB_LEASE_S,
    Database,
    NotFoundError,
    instant,
    new_id,
    renew_lease,
    utc_now,
)
from asterisk_bridge.store.rows import CallbackJob
from asterisk_bridge.store.tables import callbacks

# A job claimed before leases existed (migration 0010) has none: it is taken for its dead
# node's after this long. An attempt rings an employee then the client: minutes, not hours.
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
        values = _new_job(
            number=number, phone=phone, attempts=attempts, delay=delay, due_at=due_at, reason=reason
        )
        with self._db.write() as conn:
            conn.execute(sa.insert(callbacks).values(**values))
            query = sa.select(callbacks).where(callbacks.c.id == values["id"])
            return _job(conn.execute(query).mappings().one())

    def add_for_call(
        self,
        *,
        number: str,
        phone: str,
        attempts: int,
        delay: float,
        due_at: datetime,
        reason: str,
        call_id: str | None,
        queue: str | None = None,
        joined_at: datetime | None = None,
    ) -> CallbackJob | None:
        """Queue the callback a call asked for (missed, or virtual hold when `queue` and
        `joined_at` keep the caller's place in that queue's line).

        None, and nothing added, when the caller already has a callback pending or in
        progress on this number, whoever asked for it: never two at once. The unique
        `active_key` settles two nodes adding one at the same moment.
        """
        if (queue is None) != (joined_at is None):
            raise ValueError("a kept place needs both its queue and the time its caller joined")
        values = _new_job(
            number=number, phone=phone, attempts=attempts, delay=delay, due_at=due_at, reason=reason
        )
        values.update(
            call_id=call_id,
            queue=queue,
            joined_at=None if joined_at is None else instant("joined_at", joined_at),
            active_key=active_key(number, phone),
        )
        insert = (
            self._db.insert(callbacks)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[callbacks.c.active_key])
        )
        with self._db.write() as conn:
            if conn.execute(sa.select(sa.literal(1)).where(_active(number, phone))).first():
                return None
            conn.execute(insert)
            # Read back rather than trust rowcount: PostgreSQL reports -1 for an INSERT
            # that returns its serial key. No row: another node's insert won.
            query = sa.select(callbacks).where(callbacks.c.id == values["id"])
            row = conn.execute(query).mappings().first()
            return None if row is None else _job(row)

    def has_active(self, number: str, phone: str) -> bool:
        """Whether `phone` has a callback pending or in progress on `number`."""
        with self._db.read() as conn:
            return (
                conn.execute(sa.select(sa.literal(1)).where(_active(number, phone))).first()
                is not None
            )

    def held(self) -> list[CallbackJob]:
        """The kept places (virtual hold) whose first attempt waits for its turn, in the
        order their callers joined their queue."""
        with self._db.read() as conn:
            return [_job(row) for row in conn.execute(_held_query()).mappings()]

    def claim_held(
        self, job_id: str, *, node: str, now: datetime, lease: float = JOB_LEASE_S
    ) -> CallbackJob | None:
        """Mark the kept place `job_id` in progress on `node` now that its turn came; None
        when it is no longer waiting (another node took it)."""
        now = instant("now", now)
        claim = (
            sa.update(callbacks)
            .where(callbacks.c.id == job_id, _holds_place())
            .values(**_claimed(node, now, lease))
        )
        with self._db.write() as conn:
            if conn.execute(claim).rowcount != 1:
                return None
            row = conn.execute(sa.select(callbacks).where(callbacks.c.id == job_id)).mappings()
            return _job(row.one())

    def jobs(self) -> list[CallbackJob]:
        """All callback jobs, newest first."""
        query = sa.select(callbacks).order_by(callbacks.c.seq.desc())
        with self._db.read() as conn:
            return [_job(row) for row in conn.execute(query).mappings()]

    def claim_due(
        self, now: datetime, *, node: str, lease: float = JOB_LEASE_S
    ) -> CallbackJob | None:
        """Mark the most overdue job as in progress on `node`, held for `lease` seconds, and
        return it; None if none is due.

        A job whose lease ran out (its node died, or lost the store for longer than the
        lease) is due again: this node takes it over.
        """
        now = instant("now", now)
        due = sa.or_(
            sa.and_(
                callbacks.c.status == CallbackStatus.PENDING,
                callbacks.c.due_at <= now,
                # A kept place's first attempt comes with its turn in the line (held()).
                sa.not_(_holds_place()),
            ),
            _lease_expired(now),
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
                .values(**_claimed(node, now, lease))
            )
            if conn.execute(claim).rowcount != 1:
                return None
            row = conn.execute(sa.select(callbacks).where(callbacks.c.seq == seq)).mappings().one()
            return _job(row)

    def next_due(self) -> datetime | None:
        """The earliest time a job becomes due for `claim_due` (a pending job's `due_at`,
        kept places excepted: their turn decides; an in-progress job's `lease_until`),
        None when there is no such job. The workers sleep until then (wakeup.py), and
        claim (a write transaction) only once it has come. A job claimed before leases
        existed has no `lease_until`: it is due CALLBACK_STALE_AFTER_S after its claim."""
        pending, leased = _next_due_queries()
        with self._db.read() as conn:
            due = conn.execute(pending).scalar_one_or_none()
            lease_until, unleased_claim = conn.execute(leased).one()
        if unleased_claim is not None:
            unleased_claim += timedelta(seconds=CALLBACK_STALE_AFTER_S)
        return min((when for when in (due, lease_until, unleased_claim) if when), default=None)

    def renew(self, job_id: str, *, node: str, now: datetime, lease: float = JOB_LEASE_S) -> bool:
        """Extend `node`'s hold on the job to `lease` seconds from `now`. False when the job
        is no longer in progress on `node` (its lease ran out and another node took it)."""
        return renew_lease(
            self._db, callbacks, _held_by(job_id, node), now=instant("now", now), lease=lease
        )

    def give_back(self, job_id: str, *, node: str, now: datetime) -> None:
        """Give back a job claimed by `node` without trying it (the node is stopping): it
        is pending again, with its attempts untouched, for any node to take."""
        now = instant("now", now)
        with self._db.write() as conn:
            conn.execute(
                sa.update(callbacks).where(_held_by(job_id, node)).values(**_unclaimed(now))
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

    def finish_attempt(
        self, job_id: str, *, success: bool, now: datetime, node: str | None = None
    ) -> bool:
        """Record one attempt: done on success, failed when attempts run out, else retry later.

        With `node`: only while the job is still in progress on `node`. False, and nothing
        written, when its lease ran out and another node took the job over: that node's
        attempt is the one that counts, so the job is done once.
        """
        now = instant("now", now)
        query = sa.select(callbacks).where(callbacks.c.id == job_id)
        if self._db.is_postgresql:
            # Lock the job so the read-modify-write of attempts_made cannot interleave.
            query = query.with_for_update()
        with self._db.write() as conn:
            job = conn.execute(query).mappings().first()
            if job is None:
                raise NotFoundError(f"no callback {job_id!r}")
            if node is not None and (
                job["status"] != CallbackStatus.IN_PROGRESS or job["node"] != node
            ):
                return False
            made = job["attempts_made"] + 1
            values: dict[str, Any] = {
                "attempts_made": made,
                "node": None,
                "claimed_at": None,
                "lease_until": None,
                "updated_at": now,
            }
            if success:
                values["status"] = CallbackStatus.DONE.value
                values["active_key"] = None  # the caller may ask for a callback again
            elif made >= job["attempts"]:
                values["status"] = CallbackStatus.FAILED.value
                values["active_key"] = None
            else:
                values["status"] = CallbackStatus.PENDING.value
                values["due_at"] = now + timedelta(seconds=job["delay"])
            conn.execute(sa.update(callbacks).where(callbacks.c.id == job_id).values(**values))
            return True


def active_key(number: str, phone: str) -> str:
    """The key one caller's callbacks made by calls share while one is active."""
    return f"{number} {phone}"


def _active(number: str, phone: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        callbacks.c.number == number,
        callbacks.c.phone == phone,
        callbacks.c.status.in_([CallbackStatus.PENDING, CallbackStatus.IN_PROGRESS]),
    )


def _lease_expired(now: datetime) -> sa.ColumnElement[bool]:
    """In progress on a node that stopped renewing its lease (or, for a job claimed before
    leases existed, claimed longer ago than any attempt lasts)."""
    return sa.and_(
        callbacks.c.status == CallbackStatus.IN_PROGRESS,
        sa.or_(
            callbacks.c.lease_until < now,
            sa.and_(
                callbacks.c.lease_until.is_(None),
                callbacks.c.claimed_at < now - timedelta(seconds=CALLBACK_STALE_AFTER_S),
            ),
        ),
    )


def _held_by(job_id: str, node: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        callbacks.c.id == job_id,
        callbacks.c.status == CallbackStatus.IN_PROGRESS,
        callbacks.c.node == node,
    )


def _claimed(node: str, now: datetime, lease: float) -> dict[str, Any]:
    if lease <= 0:
        raise ValueError(f"a lease must be positive, not {lease}")
    return {
        "status": CallbackStatus.IN_PROGRESS.value,
        "node": node,
        "claimed_at": now,
        "lease_until": now + timedelta(seconds=lease),
        "updated_at": now,
    }


def _holds_place() -> sa.ColumnElement[bool]:
    """A pending kept place that has not had its first attempt (CallbackJob.holds_place)."""
    return sa.and_(
        callbacks.c.status == CallbackStatus.PENDING,
        callbacks.c.queue.is_not(None),
        callbacks.c.joined_at.is_not(None),
        callbacks.c.attempts_made == 0,
    )


# The statements of the workers' looks, run every few seconds when idle: built once, as
# building one was a third of a look's CPU (issue 15). They take no parameters.
@functools.cache
def _held_query() -> sa.Select[Any]:
    return (
        sa.select(callbacks).where(_holds_place()).order_by(callbacks.c.joined_at, callbacks.c.seq)
    )


@functools.cache
def _next_due_queries() -> tuple[sa.Select[Any], sa.Select[Any]]:
    pending = sa.select(sa.func.min(callbacks.c.due_at)).where(
        callbacks.c.status == CallbackStatus.PENDING, sa.not_(_holds_place())
    )
    leased = sa.select(
        sa.func.min(callbacks.c.lease_until),
        sa.func.min(sa.case((callbacks.c.lease_until.is_(None), callbacks.c.claimed_at))),
    ).where(callbacks.c.status == CallbackStatus.IN_PROGRESS)
    return pending, leased


def _new_job(
    *, number: str, phone: str, attempts: int, delay: float, due_at: datetime, reason: str
) -> dict[str, Any]:
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    if delay < 0:
        raise ValueError(f"delay must not be negative, not {delay}")
    now = utc_now()
    return {
        "id": new_id(),
        "number": number,
        "phone": phone,
        "reason": reason,
        "attempts": attempts,
        "attempts_made": 0,
        "delay": delay,
        "status": CallbackStatus.PENDING.value,
        "due_at": instant("due_at", due_at),
        "created_at": now,
        "updated_at": now,
    }


def _unclaimed(now: datetime) -> dict[str, Any]:
    return {
        "status": CallbackStatus.PENDING.value,
        "node": None,
        "claimed_at": None,
        "lease_until": None,
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
        queue=values["queue"],
        joined_at=values["joined_at"],
        call_id=values["call_id"],
        lease_until=values["lease_until"],
    )
