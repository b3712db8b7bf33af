"""The one database every repository shares: engine set-up, schema, short transactions.

Repositories never create engines or connections of their own; they take a `Database` and
run each public method as one `read()` or `write()` transaction on a pooled connection, so
the asyncio application can call them through `asyncio.to_thread` from any thread.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from asterisk_bridge.store import migrate

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
# How long a job's claim (callbacks, transcriptions) holds without renewal; `jobs.lease`
# sets it. The node working a job renews it every third of this, so only a node that
# stopped renewing (dead, or cut from the store that long) loses its job to another.
JOB_LEASE_S: Final = 60.0
# Key of the advisory lock serialising schema creation when several nodes start at once
# (CREATE TABLE IF NOT EXISTS is not race-free on PostgreSQL). Any constant will do.
_SCHEMA_LOCK_KEY: Final = 0x6E756D636667  # "numcfg"

# Connections from the write engine open SQLite transactions with BEGIN IMMEDIATE.
_WRITE_OPTION: Final = "numcfg_write"


log = logging.getLogger("numcfg.store")


class StoreFileGone(sa.exc.SQLAlchemyError):
    """The SQLite file was deleted while numcfg runs."""


class StoreReadOnly(sa.exc.SQLAlchemyError):
    """The SQLite file or its folder cannot be written (its mode, or a read-only mount)."""


# What a locked, read-only, full or unreachable database raises through SQLAlchemy, for
# callers that must answer for it (the API: 503) without knowing SQL themselves.
STORE_FAULTS: tuple[type[Exception], ...] = (sa.exc.SQLAlchemyError,)


class NotFoundError(LookupError):
    """The row a change refers to does not exist (unknown call, lead or callback id)."""


class Database:
    """The engine and its two transaction kinds; shared by every repository."""

    def __init__(self, *, engine: Engine) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name
        # Same pool and events, but transactions that will write announce it up front, so
        # SQLite takes the write lock at BEGIN (waiting under busy_timeout) instead of
        # failing with "database is locked" when a read lock cannot be upgraded.
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})
        # (revision before, revision now) of the schema migration run at open.
        self.migrated: tuple[str | None, str] = (None, "")
        database = engine.url.database if self.dialect == "sqlite" else None
        self._file = Path(database).expanduser() if database else None
        self._file_id = _file_id(self._file)
        self._reopening = threading.Lock()

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        self._same_file()
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        self._same_file()
        self._writable()
        with self._writer.begin() as conn:
            yield conn

    def _same_file(self) -> None:
        """A SQLite file deleted or replaced under us. Pooled connections would go on
        writing into the unlinked inode (lost at the next start), new ones would find an
        empty file: neither may pass for the store. Gone: every use is a store fault (the
        calls fall back to what they know, the journal spools, /ready says why) until a
        file is back at the path; replaced (restored from a backup): reopen it. One stat()
        per transaction."""
        if self._file is None or _file_id(self._file) == self._file_id:
            return
        with self._reopening:
            found = _file_id(self._file)
            if found == self._file_id:
                return
            if found is None:
                raise StoreFileGone(f"the store file {self._file} was deleted")
            log.warning("store file %s was replaced: reopening it", self._file)
            self.engine.dispose()
            self.migrated = _create_schema(self.engine)
            self._file_id = _file_id(self._file)

    def _writable(self) -> None:
        """A store made read-only while numcfg runs: its pooled connections, opened
        before, would still write through a read-only mount (or hold a write lock on a
        file whose mode says no), so the writes would land where nobody expects them or
        fail late. Checked before each write (one access() call, which sees a read-only
        mount even as root): a store fault, so the journal spools the details."""
        if self._file is None:
            return
        for path in (self._file, self._file.parent):  # SQLite writes -wal/-journal beside
            if path.exists() and not os.access(path, os.W_OK):
                raise StoreReadOnly(f"the store {path} is read-only")

    def insert(self, table: sa.Table) -> Any:
        """A dialect INSERT, the only kind with ON CONFLICT (the upserts need it)."""
        if self.is_postgresql:
            return postgresql.insert(table)
        return sqlite.insert(table)

    def ping(self) -> bool:
        try:
            self._same_file()
            with self.engine.connect() as conn:
                conn.execute(sa.select(1))
        except sa.exc.SQLAlchemyError:
            return False
        return True

    def dispose(self) -> None:
        self.engine.dispose()


def _file_id(path: Path | None) -> tuple[int, int] | None:
    try:
        return None if path is None else (path.stat().st_dev, path.stat().st_ino)
    except FileNotFoundError:
        return None


def _private_file(path: Path) -> None:
    # Call details and phone numbers: readable by numcfg's user only. SQLite gives its
    # -wal and -shm files the database file's mode.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def open_database(url: str) -> Database:
    """Connect to `sqlite:///path` or `postgresql://user:pw@host/db`; create missing tables."""
    engine = _create_engine(url)
    try:
        migrated = _create_schema(engine)
    except Exception:
        engine.dispose()
        raise
    database = Database(engine=engine)
    database.migrated = migrated
    return database


# -- values shared by the repositories ------------------------------------------------------


def renew_lease(
    db: Database, table: sa.Table, held: sa.ColumnElement[bool], *, now: datetime, lease: float
) -> bool:
    """Extend a job's lease (the rows `held` selects: the job, still held by its node) to
    `lease` seconds from `now`; False when no such row is left (another node took it)."""
    stmt = (
        sa.update(table)
        .where(held)
        .values(lease_until=now + timedelta(seconds=lease), updated_at=now)
    )
    with db.write() as conn:
        return bool(conn.execute(stmt).rowcount == 1)


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def instant(key: str, value: datetime) -> datetime:
    """Check a datetime argument up front, so a naive one is a ValueError naming it."""
    if not isinstance(value, datetime):
        raise ValueError(f"{key}: expected a datetime, not {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{key}: timestamp {value.isoformat()} has no timezone offset")
    return value


def optional_instant(key: str, value: datetime | None) -> datetime | None:
    return None if value is None else instant(key, value)


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
    _private_file(Path(database).expanduser())
    engine = sa.create_engine(
        parsed,
        pool_size=POOL_SIZE,
        max_overflow=POOL_MAX_OVERFLOW,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
    )
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module, which would otherwise BEGIN
    # lazily and in DEFERRED mode only; _on_sqlite_begin emits BEGIN itself.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        # WAL: readers (API, CLI) never block the writer and vice versa.
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL is still crash-safe for the database (a power cut may lose the
        # last commits, never corrupt): it spares an fsync per call-details write.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    finally:
        cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock at once, so a read-then-write transaction never fails
    # half-way on a lock upgrade; pure reads stay DEFERRED and run concurrently.
    mode = "IMMEDIATE" if conn.get_execution_options().get(_WRITE_OPTION) else "DEFERRED"
    # Straight to the sqlite3 connection: through SQLAlchemy's execution machinery this
    # one statement cost a third of a call-details transaction (0.13 of 0.34 ms).
    statement = f"BEGIN {mode}"
    try:
        conn.connection.driver_connection.execute(statement)
    except sqlite3.Error as exc:  # a locked or read-only file: a store fault, as usual
        raise sa.exc.OperationalError(statement, None, exc) from exc


def _create_schema(engine: Engine) -> tuple[str | None, str]:
    # On SQLite the write option makes it BEGIN IMMEDIATE, which serialises the
    # check-then-create of processes opening a new file together.
    with engine.execution_options(**{_WRITE_OPTION: True}).begin() as conn:
        if engine.dialect.name == "postgresql":
            # Held until commit: nodes starting together create the tables one at a time.
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
        return migrate.upgrade(conn)
