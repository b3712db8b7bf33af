"""Configurations published to the shared store (`numcfg apply`), and how nodes pick them up.

`numcfg apply` inserts the file's text as a new version; on PostgreSQL the same transaction
NOTIFYs CONFIG_CHANNEL with the version, so every node LISTENing reloads within moments
and no node polls. SQLite has no notifications and is single-node by design: there the
node reloads from its file (SIGHUP or file change), and this watcher returns at once
unless asked to poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from ..store import ListenLost, Store
from .holder import ConfigHolder

log = logging.getLogger("numcfg.config")

OnText = Callable[[int, str], None]

# Reconnect after losing the LISTEN connection: quick first, then no faster than this, so
# a PostgreSQL restart is followed within seconds without hammering a server that is down.
RECONNECT_MIN_S: Final = 0.5
RECONNECT_MAX_S: Final = 30.0


async def watch_store_config(
    store: Store,
    on_text: OnText,
    *,
    poll_fallback: float | None = None,
    after: int = 0,
) -> None:
    """Call `on_text(version, text)` for each configuration published after `after`.

    On PostgreSQL: LISTEN for publications and run until cancelled. The newest version
    is delivered first, once listening (so nothing published during start-up or a
    reconnection is missed); afterwards only newer versions, in the order seen. With
    `poll_fallback` the store is also read every that many seconds, a safety net should
    a notification ever be lost.

    On SQLite: return at once, since a single node reloads from its file; with
    `poll_fallback` poll the store instead, for setups that `apply` to a SQLite file.

    `on_text` runs on the event loop and should be quick (ConfigHolder.reload_text is);
    an exception from it is logged and the version counted as seen.
    """
    seen = _Seen(after)
    versions = store.config_versions
    if not versions.notifies:
        if poll_fallback is None:
            return
        while True:
            await _deliver_latest(store, on_text, seen)
            await asyncio.sleep(poll_fallback)
    backoff = RECONNECT_MIN_S
    while True:
        try:
            async with versions.listen() as listener:
                backoff = RECONNECT_MIN_S
                await _deliver_latest(store, on_text, seen)
                while True:
                    async for _version in listener.versions(timeout=poll_fallback):
                        # The payload is a version, but the newest one is what to run: a
                        # burst of applies then costs one reload per notification at most.
                        await _deliver_latest(store, on_text, seen)
                    await _deliver_latest(store, on_text, seen)
        except ListenLost as exc:
            log.warning("config LISTEN connection lost (%s); retrying in %.1f s", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)


def holder_sink(holder: ConfigHolder) -> OnText:
    """An `on_text` that loads published versions into `holder`, keeping the last good one."""

    def on_text(version: int, text: str) -> None:
        holder.reload_text(text, f"store:v{version}")

    return on_text


class _Seen:
    def __init__(self, version: int) -> None:
        self.version = version


async def _deliver_latest(store: Store, on_text: OnText, seen: _Seen) -> None:
    latest = await asyncio.to_thread(store.config_versions.latest)
    if latest is None or latest.version <= seen.version:
        return
    seen.version = latest.version
    try:
        on_text(latest.version, latest.text)
    except Exception:
        log.exception("handling published config version %d failed", latest.version)
