"""Employees: their workday state and which call holds each of them (claims)."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import sqlalchemy as sa

from asterisk_bridge.policy.types import STORED_WORKDAYS, Workday
from asterisk_bridge.store.engine import Database, utc_now
from asterisk_bridge.store.tables import employee_claims, workdays

# A conversation longer than this is presumed to be a claim left behind by a crashed node.
CLAIM_STALE_AFTER_S: Final = 4 * 3600.0


class People:
    def __init__(self, *, db: Database) -> None:
        self._db = db

    # -- workday ----------------------------------------------------------------------------

    def set_workday(self, employee: str, state: Workday) -> None:
        if state not in STORED_WORKDAYS:
            raise ValueError(
                f"workday state must be one of {sorted(STORED_WORKDAYS)}, not {state!r}"
            )
        stmt = self._db.insert(workdays).values(
            employee=employee, state=Workday(state).value, changed_at=utc_now()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[workdays.c.employee],
            set_={"state": stmt.excluded.state, "changed_at": stmt.excluded.changed_at},
        )
        with self._db.write() as conn:
            conn.execute(stmt)

    def workday(self, employee: str) -> Workday | None:
        """The employee's state, or None when she never started a workday."""
        query = sa.select(workdays.c.state).where(workdays.c.employee == employee)
        with self._db.read() as conn:
            state = conn.execute(query).scalar_one_or_none()
        return None if state is None else Workday(state)

    def workdays(self) -> dict[str, Workday]:
        """Every employee who ever started a workday, with her state."""
        with self._db.read() as conn:
            rows = conn.execute(sa.select(workdays.c.employee, workdays.c.state))
            return {employee: Workday(state) for employee, state in rows}

    # -- claims -----------------------------------------------------------------------------

    def claim(
        self,
        employee: str,
        *,
        call_id: str,
        node: str,
        stale_after: float = CLAIM_STALE_AFTER_S,
    ) -> bool:
        """Reserve `employee` for `call_id`; False while another call holds her.

        The same call claiming again succeeds (and refreshes the claim). A claim older than
        `stale_after` seconds is presumed left behind by a crashed node and is taken over.
        """
        now = utc_now()
        insert = (
            self._db.insert(employee_claims)
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
        with self._db.write() as conn:
            if conn.execute(insert).rowcount == 1:
                return True
            return conn.execute(take_over).rowcount == 1

    def busy(self, *, stale_after: float = CLAIM_STALE_AFTER_S) -> set[str]:
        """Employees held by a call (on any node), ignoring claims presumed stale."""
        cutoff = utc_now() - timedelta(seconds=stale_after)
        stmt = sa.select(employee_claims.c.employee).where(employee_claims.c.claimed_at >= cutoff)
        with self._db.read() as conn:
            return {row[0] for row in conn.execute(stmt)}

    def release(self, employee: str, *, call_id: str) -> None:
        """Free `employee` if `call_id` holds her; another call's claim is left alone."""
        stmt = sa.delete(employee_claims).where(
            employee_claims.c.employee == employee, employee_claims.c.call_id == call_id
        )
        with self._db.write() as conn:
            conn.execute(stmt)

    def release_node(self, node: str) -> None:
        """At start-up: free the employees this node held before it stopped."""
        with self._db.write() as conn:
            conn.execute(sa.delete(employee_claims).where(employee_claims.c.node == node))
