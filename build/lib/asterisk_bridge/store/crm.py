"""The builtin CRM (contacts, leads) and the outbox of CRM operations to retry."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from asterisk_bridge.policy.types import CrmOpStatus
from asterisk_bridge.store.engine import Database, NotFoundError, instant, new_id, utc_now
from asterisk_bridge.store.rows import Contact, Lead, PendingCrmOp
from asterisk_bridge.store.tables import contacts, crm_pending, leads


class CrmRecords:
    def __init__(self, *, db: Database) -> None:
        self._db = db

    # -- contacts ---------------------------------------------------------------------------

    def add_contact(
        self, *, name: str, phone: str, responsible: str | None, kind: str = "contact"
    ) -> Contact:
        """Add a contact, or update the one with this phone (re-importing a CSV is harmless)."""
        stmt = self._db.insert(contacts).values(
            id=new_id(),
            name=name,
            phone=phone,
            responsible=responsible,
            kind=kind,
            created_at=utc_now(),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[contacts.c.phone],
            set_={
                "name": stmt.excluded.name,
                "responsible": stmt.excluded.responsible,
                "kind": stmt.excluded.kind,
            },
        )
        with self._db.write() as conn:
            conn.execute(stmt)
            query = sa.select(contacts).where(contacts.c.phone == phone)
            return _contact(conn.execute(query).mappings().one())

    def contact(self, phone: str) -> Contact | None:
        query = sa.select(contacts).where(contacts.c.phone == phone)
        with self._db.read() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _contact(row)

    def contacts(self) -> list[Contact]:
        """All contacts, newest first."""
        with self._db.read() as conn:
            rows = conn.execute(sa.select(contacts).order_by(contacts.c.seq.desc())).mappings()
            return [_contact(row) for row in rows]

    # -- leads ------------------------------------------------------------------------------

    def add_lead(
        self, *, phone: str, source: str, responsible: str | None, call_id: str | None
    ) -> tuple[Lead, bool]:
        """The lead for `phone`, created if there was none; returns (lead, created)."""
        stmt = (
            self._db.insert(leads)
            .values(
                id=new_id(),
                phone=phone,
                source=source,
                responsible=responsible,
                call_id=call_id,
                created_at=utc_now(),
            )
            .on_conflict_do_nothing(index_elements=[leads.c.phone])
            # A returned row, not rowcount: with the implicit RETURNING SQLAlchemy adds for the
            # serial key, psycopg's rowcount does not say whether the row was inserted.
            .returning(leads.c.seq)
        )
        with self._db.write() as conn:
            created = conn.execute(stmt).first() is not None
            row = conn.execute(sa.select(leads).where(leads.c.phone == phone)).mappings().one()
            return _lead(row), created

    def lead(self, phone: str) -> Lead | None:
        query = sa.select(leads).where(leads.c.phone == phone)
        with self._db.read() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _lead(row)

    def leads(self) -> list[Lead]:
        """All leads, newest first."""
        with self._db.read() as conn:
            rows = conn.execute(sa.select(leads).order_by(leads.c.seq.desc())).mappings()
            return [_lead(row) for row in rows]

    def assign_lead(self, lead_id: str, responsible: str) -> None:
        stmt = sa.update(leads).where(leads.c.id == lead_id).values(responsible=responsible)
        with self._db.write() as conn:
            if conn.execute(stmt).rowcount != 1:
                raise NotFoundError(f"no lead {lead_id!r}")

    # -- outbox: operations to retry --------------------------------------------------------

    def add_pending(self, *, kind: str, payload: Mapping[str, Any], due_at: datetime) -> str:
        """Keep a failed CRM operation (`payload` is JSON) for a retry at `due_at`; its id."""
        op_id = new_id()
        stmt = sa.insert(crm_pending).values(
            id=op_id,
            kind=kind,
            payload=dict(payload),
            status=CrmOpStatus.PENDING.value,
            attempts=0,
            due_at=instant("due_at", due_at),
            created_at=utc_now(),
        )
        with self._db.write() as conn:
            conn.execute(stmt)
        return op_id

    def claim_pending(
        self, now: datetime, *, limit: int = 20, stale_after: float = 300.0
    ) -> list[PendingCrmOp]:
        """Mark up to `limit` due operations as being retried by the caller and return them.

        An operation another node claimed more than `stale_after` seconds ago (it died
        mid-retry) is due again. The guarded UPDATE makes each row go to one node only.
        """
        now = instant("now", now)
        due = sa.and_(
            crm_pending.c.status == CrmOpStatus.PENDING,
            crm_pending.c.due_at <= now,
            sa.or_(
                crm_pending.c.claimed_at.is_(None),
                crm_pending.c.claimed_at < now - timedelta(seconds=stale_after),
            ),
        )
        pick = sa.select(crm_pending.c.seq).where(due).order_by(crm_pending.c.seq).limit(limit)
        claimed = []
        with self._db.write() as conn:
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
            return [_pending(row) for row in conn.execute(query).mappings()]

    def finish_pending(self, op_id: str) -> None:
        """The operation succeeded: forget it."""
        with self._db.write() as conn:
            conn.execute(sa.delete(crm_pending).where(crm_pending.c.id == op_id))

    def retry_pending_later(self, op_id: str, *, error: str, due_at: datetime | None) -> None:
        """Count a failed attempt; retry at `due_at`, or give up (status failed) when None."""
        values: dict[str, Any] = {
            "attempts": crm_pending.c.attempts + 1,
            "last_error": error,
            "claimed_at": None,
        }
        if due_at is None:
            values["status"] = CrmOpStatus.FAILED.value
        else:
            values["due_at"] = instant("due_at", due_at)
        stmt = sa.update(crm_pending).where(crm_pending.c.id == op_id).values(**values)
        with self._db.write() as conn:
            if conn.execute(stmt).rowcount != 1:
                raise NotFoundError(f"no pending CRM operation {op_id!r}")

    def pending(self, status: CrmOpStatus | None = None) -> list[PendingCrmOp]:
        """Operations kept for a retry (and given up), oldest first."""
        query = sa.select(crm_pending).order_by(crm_pending.c.seq)
        if status is not None:
            query = query.where(crm_pending.c.status == CrmOpStatus(status).value)
        with self._db.read() as conn:
            return [_pending(row) for row in conn.execute(query).mappings()]


def _contact(row: Mapping[str, Any]) -> Contact:
    return Contact(
        id=row["id"],
        name=row["name"],
        phone=row["phone"],
        responsible=row["responsible"],
        kind=row["kind"],
        created_at=row["created_at"],
    )


def _lead(row: Mapping[str, Any]) -> Lead:
    return Lead(
        id=row["id"],
        phone=row["phone"],
        source=row["source"],
        responsible=row["responsible"],
        call_id=row["call_id"],
        created_at=row["created_at"],
    )


def _pending(row: Mapping[str, Any]) -> PendingCrmOp:
    return PendingCrmOp(
        id=row["id"],
        kind=row["kind"],
        payload=row["payload"],
        status=CrmOpStatus(row["status"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
        due_at=row["due_at"],
        claimed_at=row["claimed_at"],
        created_at=row["created_at"],
    )
