"""Number lifecycle states (SPEC section 5: `numcfg number disconnect|undo|reconnect`)."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Final

import sqlalchemy as sa

from asterisk_bridge.policy.types import NumberStatus
from asterisk_bridge.store.engine import Database, instant
from asterisk_bridge.store.rows import NumberState
from asterisk_bridge.store.tables import number_states

_STATUSES: Final = frozenset(NumberStatus)
# Every incoming call asks for its number's state: calls take one read this recently
# (changes made through this store are seen at once; by another process, the CLI or
# another node, within this long). Lifecycle commands always read the store.
CALL_MAX_AGE_SECONDS: Final = 2.0


class NumberStates:
    def __init__(self, *, db: Database) -> None:
        self._db = db
        self._query = sa.select(number_states).where(number_states.c.number == sa.bindparam("n"))
        self._cache: dict[str, tuple[float, NumberState]] = {}
        self._lock = threading.Lock()

    def state(self, number: str, *, max_age: float = 0.0) -> NumberState:
        """The number's lifecycle state; a number never changed is active. With
        `max_age`, a state read at most that many seconds ago will do."""
        now = time.monotonic()
        cached = self.cached(number, max_age=max_age)
        if cached is not None:
            return cached
        state = self._read(number)
        with self._lock:
            self._cache[number] = (now, state)
        return state

    def cached(self, number: str, *, max_age: float) -> NumberState | None:
        """The state read at most `max_age` seconds ago, if any; never touches the store
        (so an event loop may ask without a thread hop)."""
        with self._lock:
            cached = self._cache.get(number)
        if cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
        return None

    def _read(self, number: str) -> NumberState:
        with self._db.read() as conn:
            row = conn.execute(self._query, {"n": number}).mappings().first()
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
        with self._lock:
            self._cache.pop(number, None)
