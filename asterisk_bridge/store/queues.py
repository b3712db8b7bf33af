"""Queue cursors: where the next `evenly` round starts, shared by every node."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from asterisk_bridge.store.engine import Database
from asterisk_bridge.store.tables import queue_cursors


class QueueCursors:
    def __init__(self, *, db: Database) -> None:
        self._db = db

    def cursor(self, queue: str) -> int:
        """The queue's cursor; 0 before its first call."""
        query = sa.select(queue_cursors.c.value).where(queue_cursors.c.queue == queue)
        with self._db.read() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return 0 if value is None else value

    def advance(self, queue: str, step: Callable[[int], int]) -> int:
        """Move the queue's cursor from its value `c` to `step(c)` and return `c`, as one
        transaction: two nodes starting calls at once each advance it in turn, so an
        `evenly` rotation shared by several nodes never gives two calls one start."""
        seed = self._db.insert(queue_cursors).values(queue=queue, value=0)
        seed = seed.on_conflict_do_nothing(index_elements=[queue_cursors.c.queue])
        query = sa.select(queue_cursors.c.value).where(queue_cursors.c.queue == queue)
        if self._db.is_postgresql:
            query = query.with_for_update()  # the next node waits for this advance
        with self._db.write() as conn:  # SQLite: BEGIN IMMEDIATE serialises writers
            conn.execute(seed)
            value = int(conn.execute(query).scalar_one())
            conn.execute(
                sa.update(queue_cursors)
                .where(queue_cursors.c.queue == queue)
                .values(value=step(value))
            )
        return value

    def set_cursor(self, queue: str, value: int) -> None:
        stmt = self._db.insert(queue_cursors).values(queue=queue, value=value)
        stmt = stmt.on_conflict_do_update(
            index_elements=[queue_cursors.c.queue], set_={"value": stmt.excluded.value}
        )
        with self._db.write() as conn:
            conn.execute(stmt)
