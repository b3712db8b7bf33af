"""The numcfg store: call details, workdays, claims, quotas, callbacks, CRM, config versions.

Every public method is synchronous and runs as one short transaction on a connection taken
from the engine's pool, so the asyncio application can call it through
`asyncio.to_thread` from any thread. Anything that must stay correct when several nodes
share one PostgreSQL database (employee claims, the recording quota, callback jobs, one
lead per phone) is decided by the database itself, with a unique key or a guarded UPDATE,
never by reading a value in Python and writing it back.

Timestamps come back as ISO 8601 strings in UTC (`...+00:00`); the caller converts to the
account's timezone for display.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from asterisk_bridge.policy.types import STORED_WORKDAYS, Disposition, NumberStatus
from asterisk_bridge.store.tables import (
    callbacks,
    calls,
    config_versions,
    contacts,
    crm_pending,
    employee_claims,
    hold_music,
    leads,
    metadata,
    number_states,
    open_calls,
    queue_cursors,
    recording_quota,
    workdays,
)

# A writer holds the SQLite lock for a few milliseconds; the CLI and the service share the
# file, so wait rather than fail, but give up eventually instead of hanging a call.
SQLITE_BUSY_TIMEOUT_S: Final = 10.0
# /ready and every call path go through the pool; an unreachable PostgreSQL must fail fast
# enough for the readiness probe to report it rather than time out itself.
PG_CONNECT_TIMEOUT_S: Final = 5
# asyncio.to_thread's default executor has up to 32 workers; 5 warm connections cover the
# steady state and the overflow absorbs bursts (call start-up, the scheduler tick).
POOL_SIZE: Final = 5
POOL_MAX_OVERFLOW: Final = 10
# A node that died mid-callback never finishes its attempt; after this long another node
# may run the job again. An attempt rings an employee then the client: minutes, not hours.
CALLBACK_STALE_AFTER_S: Final = 3600.0
# Key of the advisory lock serialising schema creation when several nodes start at once
# (CREATE TABLE IF NOT EXISTS is not race-free on PostgreSQL). Any constant will do.
_SCHEMA_LOCK_KEY: Final = 0x6E756D636667  # "numcfg"
# Running nodes LISTEN on this channel to reload as soon as `numcfg apply` publishes.
CONFIG_CHANNEL: Final = "numcfg_config"

# Connections from the write engine open SQLite transactions with BEGIN IMMEDIATE.
_WRITE_OPTION: Final = "numcfg_write"

WORKDAY_STATES: Final = frozenset(STORED_WORKDAYS)
NUMBER_STATUSES: Final = frozenset(NumberStatus)
# A pending CRM operation is retried until it succeeds or runs out of attempts (failed).
CRM_PENDING_STATUSES: Final = frozenset({"pending", "failed"})
CALL_KEYS: Final = (
    "id",
    "number",
    "direction",
    "caller",
    "callee",
    "employee",
    "started_at",
    "answered_at",
    "ended_at",
    "duration",
    "disposition",
    "route",
    "recording",
    "recording_skipped",
    "rating",
    "transcript",
    "crm",
)
_CALL_TIMES: Final = ("started_at", "answered_at", "ended_at")


class NotFoundError(LookupError):
    """The row a change refers to does not exist (unknown call, lead or callback id)."""


def open_store(url: str) -> Store:
    """Connect to `sqlite:///path` or `postgresql://user:pw@host/db` and create missing tables."""
    engine = _create_engine(url)
    try:
        _create_schema(engine)
    except Exception:
        engine.dispose()
        raise
    return Store(engine=engine)


class Store:
    """Thread-safe access to the store; one short transaction per method."""

    def __init__(self, *, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        # Same pool and events, but transactions that will write announce it up front, so
        # SQLite takes the write lock at BEGIN (waiting under busy_timeout) instead of
        # failing with "database is locked" when a read lock cannot be upgraded.
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def shared(self) -> bool:
        """True when several nodes may use this store at once (PostgreSQL); a SQLite file
        belongs to one node."""
        return self._dialect == "postgresql"

    def close(self) -> None:
        self._engine.dispose()

    def ping(self) -> bool:
        """True when the database answers; for /ready, so it reports instead of raising."""
        try:
            with self._engine.connect() as conn:
                conn.execute(sa.select(1))
        except sa.exc.SQLAlchemyError:
            return False
        return True

    # -- call details ---------------------------------------------------------------------

    def save_call(self, record: Mapping[str, Any]) -> None:
        """Insert or replace the call `record["id"]`; keys exactly those of SPEC section 7.
        A finished call is no longer open (same transaction)."""
        row = _call_row(record)
        with self._write() as conn:
            conn.execute(self._upsert_call(row))
            conn.execute(sa.delete(open_calls).where(open_calls.c.call_id == row["id"]))

    def _upsert_call(self, row: Mapping[str, Any]) -> Any:
        stmt = self._insert(calls).values(**row)
        return stmt.on_conflict_do_update(
            index_elements=[calls.c.id],
            set_={key: stmt.excluded[key] for key in row if key != "id"},
        )

    def open_call(self, record: Mapping[str, Any], *, node: str) -> None:
        """Note (or update) a call in progress on `node`, with its details so far."""
        _call_row(record)  # the same checks as a finished call's details
        snapshot = {**record, "route": list(record["route"])}
        stmt = self._insert(open_calls).values(call_id=record["id"], node=node, record=snapshot)
        stmt = stmt.on_conflict_do_update(
            index_elements=[open_calls.c.call_id], set_={"record": stmt.excluded.record}
        )
        with self._write() as conn:
            conn.execute(stmt)

    def close_interrupted_calls(self, *, node: str, now: datetime) -> list[str]:
        """Close the calls `node` left open when it died: each gets its details as last
        noted, ended now, "interrupted" at the end of its route, and the disposition it
        had reached (answered once someone answered, else failed). Returns their ids."""
        closed: list[str] = []
        with self._write() as conn:
            rows = conn.execute(
                sa.select(open_calls.c.call_id, open_calls.c.record).where(
                    open_calls.c.node == node
                )
            ).all()
            for call_id, snapshot in rows:
                record = dict(snapshot)
                started = _aware("started_at", record["started_at"]) or now
                answered = _aware("answered_at", record.get("answered_at"))
                record["ended_at"] = now
                record["duration"] = round((now - (answered or started)).total_seconds())
                record["disposition"] = Disposition.ANSWERED if answered else Disposition.FAILED
                record["route"] = [*record["route"], "interrupted"]
                conn.execute(self._upsert_call(_call_row(record)))
                conn.execute(sa.delete(open_calls).where(open_calls.c.call_id == call_id))
                closed.append(call_id)
        return closed

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(sa.select(calls).where(calls.c.id == call_id)).mappings().first()
        return None if row is None else _call_dict(row)

    def list_calls(
        self, *, number: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Calls newest first, optionally of one number and started at or after `since`."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        query = sa.select(calls)
        if number is not None:
            query = query.where(calls.c.number == number)
        if since is not None:
            query = query.where(calls.c.started_at >= _instant("since", since))
        # id breaks ties so paging through calls started in the same microsecond is stable.
        query = query.order_by(calls.c.started_at.desc(), calls.c.id.desc()).limit(limit)
        with self._read() as conn:
            return [_call_dict(row) for row in conn.execute(query).mappings()]

    def set_call_rating(self, call_id: str, rating: int) -> None:
        if not 1 <= rating <= 5:
            raise ValueError(f"rating must be 1-5, not {rating}")
        stmt = sa.update(calls).where(calls.c.id == call_id).values(rating=rating)
        with self._write() as conn:
            if conn.execute(stmt).rowcount != 1:
                raise NotFoundError(f"no call {call_id!r}")

    # -- workday --------------------------------------------------------------------------

    def set_workday(self, employee: str, state: str) -> None:
        if state not in WORKDAY_STATES:
            raise ValueError(
                f"workday state must be one of {sorted(WORKDAY_STATES)}, not {state!r}"
            )
        stmt = self._insert(workdays).values(employee=employee, state=state, changed_at=_now())
        stmt = stmt.on_conflict_do_update(
            index_elements=[workdays.c.employee],
            set_={"state": stmt.excluded.state, "changed_at": stmt.excluded.changed_at},
        )
        with self._write() as conn:
            conn.execute(stmt)

    def get_workday(self, employee: str) -> str | None:
        """The employee's state, or None when she never started a workday."""
        query = sa.select(workdays.c.state).where(workdays.c.employee == employee)
        with self._read() as conn:
            return conn.execute(query).scalar_one_or_none()

    def workdays(self) -> dict[str, str]:
        with self._read() as conn:
            rows = conn.execute(sa.select(workdays.c.employee, workdays.c.state))
            return {employee: state for employee, state in rows}

    # -- employee claims ------------------------------------------------------------------

    def claim_employee(
        self, employee: str, call_id: str, node: str, *, stale_after: float = 4 * 3600
    ) -> bool:
        """Reserve `employee` for `call_id`; False while another call holds her.

        The same call claiming again succeeds (and refreshes the claim). A claim older than
        `stale_after` seconds is presumed left behind by a crashed node and is taken over.
        """
        now = _now()
        insert = (
            self._insert(employee_claims)
            .values(employee=employee, call_id=call_id, node=node, claimed_at=now)
            .on_conflict_do_nothing(index_elements=[employee_claims.c.employee])
        )
        # The WHERE is re-evaluated on the latest row version when two nodes race for the
        # same stale claim, so only the first UPDATE matches.
        take_over = (
            sa.update(employee_claims)
            .where(
                employee_claims.c.employee == employee,
                sa.or_(
                    employee_claims.c.call_id == call_id,
                    employee_claims.c.claimed_at < now - timedelta(seconds=stale_after),
                ),
            )
            .values(call_id=call_id, node=node, claimed_at=now)
        )
        with self._write() as conn:
            if conn.execute(insert).rowcount == 1:
                return True
            return conn.execute(take_over).rowcount == 1

    def busy_employees(self, *, stale_after: float = 4 * 3600) -> set[str]:
        """Employees held by a call (on any node), ignoring claims presumed stale."""
        cutoff = _now() - timedelta(seconds=stale_after)
        stmt = sa.select(employee_claims.c.employee).where(employee_claims.c.claimed_at >= cutoff)
        with self._engine.connect() as conn:
            return {row[0] for row in conn.execute(stmt)}

    def release_employee(self, employee: str, call_id: str) -> None:
        """Free `employee` if `call_id` holds her; another call's claim is left alone."""
        stmt = sa.delete(employee_claims).where(
            employee_claims.c.employee == employee, employee_claims.c.call_id == call_id
        )
        with self._write() as conn:
            conn.execute(stmt)

    def release_node_claims(self, node: str) -> None:
        """At start-up: drop what this node held before it stopped.

        Its employee claims are freed, and its callback jobs still marked in progress go
        back to pending so they are retried now rather than after CALLBACK_STALE_AFTER_S.
        """
        requeue = (
            sa.update(callbacks)
            .where(callbacks.c.node == node, callbacks.c.status == "in_progress")
            .values(status="pending", node=None, claimed_at=None, updated_at=_now())
        )
        with self._write() as conn:
            conn.execute(sa.delete(employee_claims).where(employee_claims.c.node == node))
            conn.execute(requeue)

    # -- round-robin cursor ---------------------------------------------------------------

    def get_cursor(self, queue: str) -> int:
        query = sa.select(queue_cursors.c.value).where(queue_cursors.c.queue == queue)
        with self._read() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return 0 if value is None else value

    def set_cursor(self, queue: str, value: int) -> None:
        stmt = self._insert(queue_cursors).values(queue=queue, value=value)
        stmt = stmt.on_conflict_do_update(
            index_elements=[queue_cursors.c.queue], set_={"value": stmt.excluded.value}
        )
        with self._write() as conn:
            conn.execute(stmt)

    # -- recording quota ------------------------------------------------------------------

    def try_consume_recording(self, period: str, limit: int | None) -> bool:
        """Count one recording in `period`; False (nothing counted) once `limit` is reached.

        `limit` None means unlimited, but the recording is still counted for reporting.
        """
        ensure_row = (
            self._insert(recording_quota)
            .values(period=period, used=0)
            .on_conflict_do_nothing(index_elements=[recording_quota.c.period])
        )
        # Check and increment in one statement: concurrent UPDATEs of the row serialise on
        # its lock and each re-checks `used < limit` against the committed value, so N
        # concurrent consumers of a limit L get exactly min(N, L) successes on any node.
        consume = (
            sa.update(recording_quota)
            .where(recording_quota.c.period == period)
            .values(used=recording_quota.c.used + 1)
        )
        if limit is not None:
            consume = consume.where(recording_quota.c.used < limit)
        with self._write() as conn:
            conn.execute(ensure_row)
            return conn.execute(consume).rowcount == 1

    def recordings_used(self, period: str) -> int:
        query = sa.select(recording_quota.c.used).where(recording_quota.c.period == period)
        with self._read() as conn:
            used = conn.execute(query).scalar_one_or_none()
        return 0 if used is None else used

    # -- callbacks ------------------------------------------------------------------------

    def add_callback(
        self,
        *,
        number: str,
        phone: str,
        attempts: int,
        delay: float,
        due_at: datetime,
        reason: str,
    ) -> str:
        """Queue a callback job (first attempt at `due_at`); returns its id."""
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        if delay < 0:
            raise ValueError(f"delay must not be negative, not {delay}")
        due_at = _instant("due_at", due_at)
        job_id = _new_id()
        now = _now()
        stmt = sa.insert(callbacks).values(
            id=job_id,
            number=number,
            phone=phone,
            reason=reason,
            attempts=attempts,
            attempts_made=0,
            delay=delay,
            status="pending",
            due_at=due_at,
            created_at=now,
            updated_at=now,
        )
        with self._write() as conn:
            conn.execute(stmt)
        return job_id

    def list_callbacks(self) -> list[dict[str, Any]]:
        """All callback jobs, newest first."""
        query = sa.select(callbacks).order_by(callbacks.c.seq.desc())
        with self._read() as conn:
            return [_callback_dict(row) for row in conn.execute(query).mappings()]

    def claim_due_callback(
        self, now: datetime, node: str, *, stale_after: float = CALLBACK_STALE_AFTER_S
    ) -> dict[str, Any] | None:
        """Mark the most overdue job as in progress on `node` and return it; None if none is due.

        A job left in progress longer than `stale_after` seconds (its node died) is due again.
        """
        now = _instant("now", now)
        due = sa.or_(
            sa.and_(callbacks.c.status == "pending", callbacks.c.due_at <= now),
            sa.and_(
                callbacks.c.status == "in_progress",
                callbacks.c.claimed_at < now - timedelta(seconds=stale_after),
            ),
        )
        pick = (
            sa.select(callbacks.c.seq)
            .where(due)
            .order_by(callbacks.c.due_at, callbacks.c.seq)
            .limit(1)
        )
        if self._dialect == "postgresql":
            # Nodes polling together each lock a different job instead of queueing behind
            # the same row and then finding it taken.
            pick = pick.with_for_update(skip_locked=True)
        with self._write() as conn:
            seq = conn.execute(pick).scalar_one_or_none()
            if seq is None:
                return None
            # `due` again: the claim only counts if the job was still due when written.
            claim = (
                sa.update(callbacks)
                .where(callbacks.c.seq == seq, due)
                .values(status="in_progress", node=node, claimed_at=now, updated_at=now)
            )
            if conn.execute(claim).rowcount != 1:
                return None
            row = conn.execute(sa.select(callbacks).where(callbacks.c.seq == seq)).mappings().one()
            return _callback_dict(row)

    def return_callback(self, job_id: str, *, node: str, now: datetime) -> None:
        """Give back a job claimed by `node` without trying it (the node is stopping): it
        is pending again, with its attempts untouched, for any node to take."""
        now = _instant("now", now)
        with self._write() as conn:
            conn.execute(
                sa.update(callbacks)
                .where(
                    callbacks.c.id == job_id,
                    callbacks.c.status == "in_progress",
                    callbacks.c.node == node,
                )
                .values(status="pending", node=None, claimed_at=None, updated_at=now)
            )

    def finish_callback_attempt(self, job_id: str, *, success: bool, now: datetime) -> None:
        """Record one attempt: done on success, failed when attempts run out, else retry later."""
        now = _instant("now", now)
        query = sa.select(callbacks).where(callbacks.c.id == job_id)
        if self._dialect == "postgresql":
            # Lock the job so the read-modify-write of attempts_made cannot interleave.
            query = query.with_for_update()
        with self._write() as conn:
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
                values["status"] = "done"
            elif made >= job["attempts"]:
                values["status"] = "failed"
            else:
                values["status"] = "pending"
                values["due_at"] = now + timedelta(seconds=job["delay"])
            conn.execute(sa.update(callbacks).where(callbacks.c.id == job_id).values(**values))

    # -- number lifecycle -----------------------------------------------------------------

    def get_number_state(self, number: str) -> dict[str, Any]:
        """The number's lifecycle state; a number never changed is active."""
        query = sa.select(number_states).where(number_states.c.number == number)
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return {"status": "active", "changed_at": None, "undo_token": None}
        return {
            "status": row["status"],
            "changed_at": _iso(row["changed_at"]),
            "undo_token": row["undo_token"],
        }

    def set_number_state(
        self, number: str, status: str, *, undo_token: str | None, changed_at: datetime
    ) -> None:
        if status not in NUMBER_STATUSES:
            raise ValueError(
                f"number status must be one of {sorted(NUMBER_STATUSES)}, not {status!r}"
            )
        stmt = self._insert(number_states).values(
            number=number,
            status=status,
            undo_token=undo_token,
            changed_at=_instant("changed_at", changed_at),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[number_states.c.number],
            set_={
                "status": stmt.excluded.status,
                "undo_token": stmt.excluded.undo_token,
                "changed_at": stmt.excluded.changed_at,
            },
        )
        with self._write() as conn:
            conn.execute(stmt)

    # -- builtin CRM ----------------------------------------------------------------------

    def add_contact(
        self, *, name: str, phone: str, responsible: str | None, kind: str = "contact"
    ) -> dict[str, Any]:
        """Add a contact, or update the one with this phone (re-importing a CSV is harmless)."""
        stmt = self._insert(contacts).values(
            id=_new_id(),
            name=name,
            phone=phone,
            responsible=responsible,
            kind=kind,
            created_at=_now(),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[contacts.c.phone],
            set_={
                "name": stmt.excluded.name,
                "responsible": stmt.excluded.responsible,
                "kind": stmt.excluded.kind,
            },
        )
        with self._write() as conn:
            conn.execute(stmt)
            query = sa.select(contacts).where(contacts.c.phone == phone)
            return _contact_dict(conn.execute(query).mappings().one())

    def find_contact(self, phone: str) -> dict[str, Any] | None:
        query = sa.select(contacts).where(contacts.c.phone == phone)
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _contact_dict(row)

    def list_contacts(self) -> list[dict[str, Any]]:
        """All contacts, newest first."""
        with self._read() as conn:
            rows = conn.execute(sa.select(contacts).order_by(contacts.c.seq.desc())).mappings()
            return [_contact_dict(row) for row in rows]

    def add_lead(
        self, *, phone: str, source: str, responsible: str | None, call_id: str | None
    ) -> tuple[dict[str, Any], bool]:
        """The lead for `phone`, created if there was none; returns (lead, created)."""
        stmt = (
            self._insert(leads)
            .values(
                id=_new_id(),
                phone=phone,
                source=source,
                responsible=responsible,
                call_id=call_id,
                created_at=_now(),
            )
            .on_conflict_do_nothing(index_elements=[leads.c.phone])
            # A returned row, not rowcount: with the implicit RETURNING SQLAlchemy adds for the
            # serial key, psycopg's rowcount does not say whether the row was inserted.
            .returning(leads.c.seq)
        )
        with self._write() as conn:
            created = conn.execute(stmt).first() is not None
            row = conn.execute(sa.select(leads).where(leads.c.phone == phone)).mappings().one()
            return _lead_dict(row), created

    def list_leads(self) -> list[dict[str, Any]]:
        """All leads, newest first."""
        with self._read() as conn:
            rows = conn.execute(sa.select(leads).order_by(leads.c.seq.desc())).mappings()
            return [_lead_dict(row) for row in rows]

    def assign_lead(self, lead_id: str, responsible: str) -> None:
        stmt = sa.update(leads).where(leads.c.id == lead_id).values(responsible=responsible)
        with self._write() as conn:
            if conn.execute(stmt).rowcount != 1:
                raise NotFoundError(f"no lead {lead_id!r}")

    def find_lead(self, phone: str) -> dict[str, Any] | None:
        query = sa.select(leads).where(leads.c.phone == phone)
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _lead_dict(row)

    def set_call_crm(self, call_id: str, crm: Mapping[str, Any] | None) -> None:
        """Attach a CRM entity to a call after the fact (a lead created by a retry)."""
        stmt = sa.update(calls).where(calls.c.id == call_id).values(crm=crm)
        with self._write() as conn:
            if conn.execute(stmt).rowcount != 1:
                raise NotFoundError(f"no call {call_id!r}")

    # -- pending CRM operations -----------------------------------------------------------

    def add_crm_pending(self, *, kind: str, payload: Mapping[str, Any], due_at: datetime) -> str:
        """Keep a failed CRM operation (`payload` is JSON) for a retry at `due_at`."""
        op_id = _new_id()
        stmt = sa.insert(crm_pending).values(
            id=op_id,
            kind=kind,
            payload=dict(payload),
            status="pending",
            attempts=0,
            due_at=_instant("due_at", due_at),
            created_at=_now(),
        )
        with self._write() as conn:
            conn.execute(stmt)
        return op_id

    def claim_crm_pending(
        self, now: datetime, *, limit: int = 20, stale_after: float = 300.0
    ) -> list[dict[str, Any]]:
        """Mark up to `limit` due operations as being retried by the caller and return them.

        An operation another node claimed more than `stale_after` seconds ago (it died
        mid-retry) is due again. The guarded UPDATE makes each row go to one node only.
        """
        now = _instant("now", now)
        due = sa.and_(
            crm_pending.c.status == "pending",
            crm_pending.c.due_at <= now,
            sa.or_(
                crm_pending.c.claimed_at.is_(None),
                crm_pending.c.claimed_at < now - timedelta(seconds=stale_after),
            ),
        )
        pick = sa.select(crm_pending.c.seq).where(due).order_by(crm_pending.c.seq).limit(limit)
        claimed = []
        with self._write() as conn:
            for seq in conn.execute(pick).scalars().all():
                claim = (
                    sa.update(crm_pending)
                    .where(crm_pending.c.seq == seq, due)
                    .values(claimed_at=now)
                )
                if conn.execute(claim).rowcount == 1:
                    claimed.append(seq)
            if not claimed:
                return []
            query = (
                sa.select(crm_pending)
                .where(crm_pending.c.seq.in_(claimed))
                .order_by(crm_pending.c.seq)
            )
            return [_crm_pending_dict(row) for row in conn.execute(query).mappings()]

    def finish_crm_pending(self, op_id: str) -> None:
        """The operation succeeded: forget it."""
        with self._write() as conn:
            conn.execute(sa.delete(crm_pending).where(crm_pending.c.id == op_id))

    def retry_crm_pending_later(self, op_id: str, *, error: str, due_at: datetime | None) -> None:
        """Count a failed attempt; retry at `due_at`, or give up (status failed) when None."""
        values: dict[str, Any] = {
            "attempts": crm_pending.c.attempts + 1,
            "last_error": error,
            "claimed_at": None,
        }
        if due_at is None:
            values["status"] = "failed"
        else:
            values["due_at"] = _instant("due_at", due_at)
        stmt = sa.update(crm_pending).where(crm_pending.c.id == op_id).values(**values)
        with self._write() as conn:
            if conn.execute(stmt).rowcount != 1:
                raise NotFoundError(f"no pending CRM operation {op_id!r}")

    def list_crm_pending(self, status: str | None = None) -> list[dict[str, Any]]:
        """Pending (and given-up) CRM operations, oldest first."""
        query = sa.select(crm_pending).order_by(crm_pending.c.seq)
        if status is not None:
            if status not in CRM_PENDING_STATUSES:
                raise ValueError(f"status must be one of {sorted(CRM_PENDING_STATUSES)}")
            query = query.where(crm_pending.c.status == status)
        with self._read() as conn:
            return [_crm_pending_dict(row) for row in conn.execute(query).mappings()]

    # -- hold music -----------------------------------------------------------------------

    def set_hold_music(self, number: str, path: str | None) -> None:
        """Play the converted upload at `path` to `number`'s callers; None: the language default."""
        with self._write() as conn:
            if path is None:
                conn.execute(sa.delete(hold_music).where(hold_music.c.number == number))
                return
            stmt = self._insert(hold_music).values(number=number, path=path, changed_at=_now())
            stmt = stmt.on_conflict_do_update(
                index_elements=[hold_music.c.number],
                set_={"path": stmt.excluded.path, "changed_at": stmt.excluded.changed_at},
            )
            conn.execute(stmt)

    def get_hold_music(self, number: str) -> str | None:
        query = sa.select(hold_music.c.path).where(hold_music.c.number == number)
        with self._read() as conn:
            return conn.execute(query).scalar_one_or_none()

    # -- published configuration ----------------------------------------------------------

    def publish_config(self, text: str) -> int:
        """Store `text` as the newest configuration and return its version.

        On PostgreSQL, listeners on CONFIG_CHANNEL are notified when the transaction
        commits, with the version as payload, so running nodes reload without polling.
        """
        stmt = sa.insert(config_versions).values(text=text, published_at=_now())
        with self._write() as conn:
            version = int(conn.execute(stmt).inserted_primary_key[0])
            if self._dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_notify(CONFIG_CHANNEL, str(version))))
            return version

    def latest_config(self) -> tuple[int, str] | None:
        query = (
            sa.select(config_versions.c.version, config_versions.c.text)
            .order_by(config_versions.c.version.desc())
            .limit(1)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else (int(row.version), row.text)

    # -- internals ------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.begin() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._writer.begin() as conn:
            yield conn

    def _insert(self, table: sa.Table) -> Any:
        """A dialect INSERT, the only kind with ON CONFLICT (the upserts need it)."""
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)


# -- engine set-up --------------------------------------------------------------------------


def _create_engine(url: str) -> Engine:
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if parsed.drivername in ("postgresql", "postgres"):
            # Plain postgresql:// would pick psycopg2, which is not installed; psycopg 3 is.
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(
            parsed,
            pool_size=POOL_SIZE,
            max_overflow=POOL_MAX_OVERFLOW,
            # The server may restart between calls; test the connection before using it.
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": PG_CONNECT_TIMEOUT_S,
                # Same zone on every node, so server-side now() and results agree.
                "options": "-c timezone=UTC",
            },
        )
    if backend == "sqlite":
        return _create_sqlite_engine(parsed)
    raise ValueError(f"unsupported store URL {parsed.render_as_string(hide_password=True)!r}")


def _create_sqlite_engine(parsed: sa.URL) -> Engine:
    database = parsed.database
    if not database or database == ":memory:" or "mode=memory" in str(parsed):
        # Each pooled connection would get its own empty database.
        raise ValueError("the SQLite store needs a file path, e.g. sqlite:////var/lib/numcfg/db")
    # First run: create the directory so `numcfg run` works on a fresh host.
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        parsed,
        pool_size=POOL_SIZE,
        max_overflow=POOL_MAX_OVERFLOW,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module, which would otherwise
        # BEGIN lazily and in DEFERRED mode only; _on_begin emits BEGIN itself.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            # WAL: readers (API, CLI) never block the writer and vice versa.
            cursor.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL is still crash-safe for the database (a power cut may lose
            # the last commits, never corrupt): it spares an fsync per call-details write.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock at once, so a read-then-write transaction never
        # fails half-way on a lock upgrade; pure reads stay DEFERRED and run concurrently.
        mode = "IMMEDIATE" if conn.get_execution_options().get(_WRITE_OPTION) else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _create_schema(engine: Engine) -> None:
    # On SQLite the write option makes it BEGIN IMMEDIATE, which serialises the
    # check-then-create of processes opening a new file together.
    with engine.execution_options(**{_WRITE_OPTION: True}).begin() as conn:
        if engine.dialect.name == "postgresql":
            # Held until commit: nodes starting together create the tables one at a time.
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
        metadata.create_all(conn)


# -- row conversion -------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _aware(key: str, value: datetime | str | None) -> datetime | None:
    """A call timestamp as an aware datetime; ISO strings must carry their offset."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{key}: not an ISO 8601 timestamp: {value!r}") from exc
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{key}: timestamp {value.isoformat()} has no timezone offset")
    return value


def _instant(key: str, value: datetime) -> datetime:
    """Check an argument up front, so a naive datetime is a plain ValueError naming it."""
    aware = _aware(key, value)
    if aware is None:
        raise ValueError(f"{key} is required")
    return aware


def _call_row(record: Mapping[str, Any]) -> dict[str, Any]:
    missing = [key for key in CALL_KEYS if key not in record]
    unknown = sorted(set(record) - set(CALL_KEYS))
    if missing or unknown:
        raise ValueError(f"call record: missing keys {missing}, unknown keys {unknown}")
    row = {key: record[key] for key in CALL_KEYS}
    for key in _CALL_TIMES:
        row[key] = _aware(key, record[key])
    if row["started_at"] is None:
        raise ValueError("call record: started_at is required")
    route = record["route"]
    if not isinstance(route, list | tuple) or not all(isinstance(step, str) for step in route):
        raise ValueError(f"call record: route must be a list of strings, not {route!r}")
    row["route"] = list(route)
    return row


def _call_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    call = {key: row[key] for key in CALL_KEYS}
    for key in _CALL_TIMES:
        call[key] = _iso(row[key])
    return call


def _callback_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "number": row["number"],
        "phone": row["phone"],
        "reason": row["reason"],
        "attempts": row["attempts"],
        "attempts_made": row["attempts_made"],
        "delay": row["delay"],
        "status": row["status"],
        "due_at": _iso(row["due_at"]),
        "node": row["node"],
        "claimed_at": _iso(row["claimed_at"]),
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }


def _contact_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "phone": row["phone"],
        "responsible": row["responsible"],
        "kind": row["kind"],
        "created_at": _iso(row["created_at"]),
    }


def _lead_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "phone": row["phone"],
        "source": row["source"],
        "responsible": row["responsible"],
        "call_id": row["call_id"],
        "created_at": _iso(row["created_at"]),
    }


def _crm_pending_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "payload": row["payload"],
        "status": row["status"],
        "attempts": row["attempts"],
        "last_error": row["last_error"],
        "due_at": _iso(row["due_at"]),
        "claimed_at": _iso(row["claimed_at"]),
        "created_at": _iso(row["created_at"]),
    }
