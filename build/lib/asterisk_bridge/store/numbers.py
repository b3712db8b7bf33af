"""Number lifecycle states (SPEC section 5: `numcfg number disconnect|undo|reconnect`)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import sqlalchemy as sa

from asterisk_bridge.policy.types import NumberStatus
from asterisk_bridge.store.engine import Database, instant
from asterisk_bridge.store.rows import NumberState
from asterisk_bridge.store.tables import number_states

_STATUSES: Final = frozenset(NumberStatus)


class NumberStates:
    def __init__(self, *, db: Database) -> None:
        self._db = db

    def state(self, number: str) -> NumberState:
        """The number's lifecycle state; a number never changed is active."""
        query = sa.select(number_states).where(number_states.c.number == number)
        with self._db.read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return NumberState(
                number=number, status=NumberStatus.ACTIVE, changed_at=None, undo_token=None
            )
        return NumberState(
            number=number,
            status=NumberStatus(row["status"]),
            changed_at=row["changed_at"],
            undo_token=row["undo_token"],
        )

    def set_state(
        self,
        number: str,
        status: NumberStatus,
        *,
        undo_token: str | None,
        changed_at: datetime,
    ) -> None:
        if status not in set(NumberStatus):
            raise ValueError(f"number status must be one of {sorted(NumberStatus)}, not {status!r}")
        stmt = self._db.insert(number_states).values(
            number=number,
            status=NumberStatus(status).value,
            undo_token=undo_token,
            changed_at=instant("changed_at", changed_at),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[number_states.c.number],
            set_={
                "status": stmt.excluded.status,
                "undo_token": stmt.excluded.undo_token,
                "changed_at": stmt.excluded.changed_at,
            },
        )
        with self._db.write() as conn:
            conn.execute(stmt)
