"""Published configurations (`numcfg apply`) and, on PostgreSQL, their notifications.

`publish` NOTIFYs CONFIG_CHANNEL in the inserting transaction, so listeners hear of a
version only once it is committed and readable. `listen()` is the one place that opens
the dedicated LISTEN connection; callers decide what to do when it is lost (ListenLost).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final

import psycopg
import sqlalchemy as sa
from psycopg import sql

from asterisk_bridge.store.engine import Database, utc_now
from asterisk_bridge.store.rows import ConfigVersion
from asterisk_bridge.store.tables import config_versions

# Running nodes LISTEN on this channel to reload as soon as `numcfg apply` publishes.
CONFIG_CHANNEL: Final = "numcfg_config"
# An idle LISTEN connection sends nothing; without TCP keepalives a server that vanished
# (host down, failover) would leave the listener waiting forever. ~60 s to notice.
_KEEPALIVE: Final = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
_CONNECT_TIMEOUT_S: Final = 5


class ListenLost(Exception):
    """The LISTEN connection could not be opened or was cut (server restart, network)."""


class ConfigVersions:
    def __init__(self, *, db: Database) -> None:
        self._db = db

    def publish(self, text: str) -> int:
        """Store `text` as the newest configuration and return its version.

        On PostgreSQL, listeners on CONFIG_CHANNEL are notified when the transaction
        commits, with the version as payload, so running nodes reload without polling.
        """
        stmt = sa.insert(config_versions).values(text=text, published_at=utc_now())
        with self._db.write() as conn:
            version = int(conn.execute(stmt).inserted_primary_key[0])
            if self._db.is_postgresql:
                conn.execute(sa.select(sa.func.pg_notify(CONFIG_CHANNEL, str(version))))
            return version

    def latest(self) -> ConfigVersion | None:
        query = sa.select(config_versions).order_by(config_versions.c.version.desc()).limit(1)
        with self._db.read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        return ConfigVersion(
            version=int(row["version"]), text=row["text"], published_at=row["published_at"]
        )

    @property
    def notifies(self) -> bool:
        """True when publishing notifies listeners (PostgreSQL); SQLite has no NOTIFY."""
        return self._db.is_postgresql

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[ConfigListener]:
        """LISTEN on CONFIG_CHANNEL on a connection of its own; raises ListenLost."""
        if not self.notifies:
            raise RuntimeError(f"{self._db.dialect} has no LISTEN/NOTIFY")
        # Not a pooled connection: LISTEN holds it for as long as the node runs.
        url = self._db.engine.url.set(drivername="postgresql")
        try:
            conn = await psycopg.AsyncConnection.connect(
                url.render_as_string(hide_password=False),
                autocommit=True,  # LISTEN takes effect only once committed
                connect_timeout=_CONNECT_TIMEOUT_S,
                **_KEEPALIVE,
            )
        except (psycopg.OperationalError, OSError) as exc:
            raise ListenLost(str(exc)) from exc
        try:
            try:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CONFIG_CHANNEL)))
            except (psycopg.OperationalError, OSError) as exc:
                raise ListenLost(str(exc)) from exc
            yield ConfigListener(conn)
        finally:
            # The connection may already be dead; closing it is then a formality.
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()


class ConfigListener:
    """Notifications of an open LISTEN connection (from ConfigVersions.listen)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def versions(self, *, timeout: float | None) -> AsyncIterator[int]:
        """The version of each publish as it is notified; ends after `timeout` seconds
        (None: never) so a caller can poll too. Raises ListenLost when the connection goes."""
        try:
            async for notify in self._conn.notifies(timeout=timeout):
                yield int(notify.payload) if notify.payload.isdigit() else 0
        except (psycopg.OperationalError, OSError) as exc:
            raise ListenLost(str(exc)) from exc
