"""The numcfg store: one database, one repository per kind of data.

Every repository method is synchronous and runs as one short transaction on a connection
from the shared pool (store/engine.py), so the asyncio application can call it through
`asyncio.to_thread` from any thread. Anything that must stay correct when several nodes
share one PostgreSQL database (employee claims, the recording quota, callback jobs, one
lead per phone) is decided by the database itself, with a unique key or a guarded UPDATE,
never by reading a value in Python and writing it back.

Rows come back as the frozen dataclasses of store/rows.py, with aware UTC datetimes.
"""

from __future__ import annotations

from asterisk_bridge.store.callbacks import CallbackJobs
from asterisk_bridge.store.calls import CallLog
from asterisk_bridge.store.config_versions import ConfigVersions
from asterisk_bridge.store.crm import CrmRecords
from asterisk_bridge.store.engine import Database, open_database
from asterisk_bridge.store.holdmusic import HoldMusic
from asterisk_bridge.store.numbers import NumberStates
from asterisk_bridge.store.people import People
from asterisk_bridge.store.queues import QueueCursors
from asterisk_bridge.store.quota import RecordingQuota
from asterisk_bridge.store.transcripts import TranscriptionJobs


def open_store(url: str) -> Store:
    """Connect to `sqlite:///path` or `postgresql://user:pw@host/db` and create missing tables."""
    return Store(db=open_database(url))


class Store:
    """The repositories, all on one database; thread-safe."""

    def __init__(self, *, db: Database) -> None:
        self._db = db
        self.calls = CallLog(db=db)
        self.people = People(db=db)
        self.queues = QueueCursors(db=db)
        self.quota = RecordingQuota(db=db)
        self.callbacks = CallbackJobs(db=db)
        self.numbers = NumberStates(db=db)
        self.crm = CrmRecords(db=db)
        self.hold_music = HoldMusic(db=db)
        self.config_versions = ConfigVersions(db=db)
        self.transcripts = TranscriptionJobs(db=db)

    @property
    def shared(self) -> bool:
        """True when several nodes may use this store at once (PostgreSQL); a SQLite file
        belongs to one node."""
        return self._db.is_postgresql

    @property
    def schema(self) -> tuple[str | None, str]:
        """The schema revision before and after the migration run when it was opened."""
        return self._db.migrated

    def ping(self) -> bool:
        """True when the database answers; for /ready, so it reports instead of raising."""
        return self._db.ping()

    def close(self) -> None:
        self._db.dispose()
