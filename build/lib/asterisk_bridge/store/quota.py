"""The recording quota: recordings made per period, counted so nodes cannot overshoot."""

from __future__ import annotations

import sqlalchemy as sa

from asterisk_bridge.store.engine import Database
from asterisk_bridge.store.tables import recording_quota


class RecordingQuota:
    def __init__(self, *, db: Database) -> None:
        self._db = db

    def try_consume(self, period: str, *, limit: int | None) -> bool:
        """Count one recording in `period`; False (nothing counted) once `limit` is reached.

        `limit` None means unlimited, but the recording is still counted for reporting.
        """
        ensure_row = (
            self._db.insert(recording_quota)
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
        with self._db.write() as conn:
            conn.execute(ensure_row)
            return conn.execute(consume).rowcount == 1

    def used(self, period: str) -> int:
        query = sa.select(recording_quota.c.used).where(recording_quota.c.period == period)
        with self._db.read() as conn:
            used = conn.execute(query).scalar_one_or_none()
        return 0 if used is None else used
