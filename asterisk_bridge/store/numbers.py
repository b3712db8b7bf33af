"""Number lifecycle states (SPEC section 5: `numcfg number disconnect|undo|reconnect`)."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any, Final

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


def never_changed(number: str) -> NumberState:
    return NumberState(number=number, status=NumberStatus.ACTIVE, changed_at=None, undo_token=None)


class NumberStates:
    def __init__(self, *, db: Database) -> None:
        self._db = db
        self._query = sa.select(number_states).where(number_states.c.number == sa.bindparam("n"))
        self._every = sa.select(number_states)
        # Every number's state as read at one instant (monotonic): a call's read takes
        # the whole table (a row per number ever disconnected: a handful), so calls on
        # any number within CALL_MAX_AGE_SECONDS need no store read and no thread hop.
        # Per number, a site with many numbers and few calls on each read on every call.
        self._snapshot: tuple[float, dict[str, NumberState]] | None = None
        self._lock = threading.Lock()

    def state(self, number: str, *, max_age: float = 0.0) -> NumberState:
        """The number's lifecycle state; a number never changed is active. With
        `max_age`, a state read at most that many seconds ago will do."""
        cached = self.cached(number, max_age=max_age)
        if cached is not None:
            return cached
        if max_age <= 0.0:  # a command: this number, from the store
            state = self._read(number)
            with self._lock:
                if self._snapshot is not None:  # fresher than the snapshot's copy
                    self._snapshot[1][number] = state
            return state
        now = time.monotonic()
        states = self._read_every()
        with self._lock:
            self._snapshot = (now, states)
        return states.get(number) or never_changed(number)

    def cached(self, number: str, *, max_age: float) -> NumberState | None:
        """The state read at most `max_age` seconds ago, if any; never touches the store
        (so an event loop may ask without a thread hop)."""
        with self._lock:
            snapshot = self._snapshot
        if snapshot is None or time.monotonic() - snapshot[0] >= max_age:
            return None
        return snapshot[1].get(number) or never_changed(number)

    def _read(self, number: str) -> NumberState:
        with self._db.read() as conn:
            row = conn.execute(self._query, {"n": number}).mappings().first()
        return _state(row) if row is not None else never_changed(number)

    def _read_every(self) -> dict[str, NumberState]:
        with self._db.read() as conn:
            rows = conn.execute(self._every).mappings().all()
        return {row["number"]: _state(row) for row in rows}

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
            self._snapshot = None  # this store's own change: seen by the next call


def _state(row: Any) -> NumberState:
    return NumberState(
        number=row["number"],
        status=NumberStatus(row["status"]),
        changed_at=row["changed_at"],
        undo_token=row["undo_token"],
    )
