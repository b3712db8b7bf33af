"""Hold music uploaded per number: the path of the converted file callers hear."""

from __future__ import annotations

import sqlalchemy as sa

from asterisk_bridge.store.engine import Database, utc_now
from asterisk_bridge.store.tables import hold_music


class HoldMusic:
    def __init__(self, *, db: Database) -> None:
        self._db = db

    def upload_path(self, number: str) -> str | None:
        """The converted upload `number`'s callers hear; None: the language default."""
        query = sa.select(hold_music.c.path).where(hold_music.c.number == number)
        with self._db.read() as conn:
            return conn.execute(query).scalar_one_or_none()

    def set_upload_path(self, number: str, path: str | None) -> None:
        """Play the converted upload at `path` to `number`'s callers; None: the default."""
        with self._db.write() as conn:
            if path is None:
                conn.execute(sa.delete(hold_music).where(hold_music.c.number == number))
                return
            stmt = self._db.insert(hold_music).values(
                number=number, path=path, changed_at=utc_now()
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=[hold_music.c.number],
                set_={"path": stmt.excluded.path, "changed_at": stmt.excluded.changed_at},
            )
            conn.execute(stmt)
