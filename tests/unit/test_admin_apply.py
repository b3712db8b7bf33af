"""numcfg apply publishes to the store; watch_store_config brings versions to running nodes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from asterisk_bridge.cli import main
from asterisk_bridge.config import ConfigHolder
from asterisk_bridge.config.store_source import holder_sink, watch_store_config
from asterisk_bridge.store import Store, open_store
from tests.unit.admin_fixtures import ENV, write_config

# SPEC: a running node sees a published config "at once"; 2 s leaves room for a slow CI box.
SEEN_WITHIN_S = 2.0


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    return write_config(tmp_path, "smtp://127.0.0.1:25")


@pytest.fixture
def config_text(config_path: Path) -> str:
    return config_path.read_text()


@pytest.fixture
def pg_store(pg_db_url: str) -> Iterator[Store]:
    store = open_store(pg_db_url)
    yield store
    store.close()


class Received:
    """An on_text that records versions and lets a test wait for the next one."""

    def __init__(self) -> None:
        self.items: list[tuple[int, str]] = []
        self._changed = asyncio.Event()

    def __call__(self, version: int, text: str) -> None:
        self.items.append((version, text))
        self._changed.set()

    async def wait_for(self, version: int) -> None:
        async with asyncio.timeout(SEEN_WITHIN_S):
            while not any(v == version for v, _ in self.items):
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def watching(store: Store, on_text, **kwargs) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(watch_store_config(store, on_text, **kwargs))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- apply ---------------------------------------------------------------------------------------


def test_apply_refuses_an_invalid_file_and_prints_every_issue(
    config_path: Path, pg_store: Store, pg_db_url: str, capsys
) -> None:
    text = config_path.read_text().replace("queue: sales", "queue: sales2")
    config_path.write_text(text.replace('extension: "102"', 'extension: "101"'))
    assert main(["apply", "-c", str(config_path), "--store", pg_db_url]) == 1
    err = capsys.readouterr().err
    assert "numbers.paris.routing.queue" in err
    assert "extension" in err
    assert pg_store.config_versions.latest() is None


def test_apply_publishes_the_text_as_written(
    config_path: Path, pg_store: Store, pg_db_url: str, capsys
) -> None:
    assert main(["apply", "-c", str(config_path), "--store", pg_db_url]) == 0
    assert "published as version 1" in capsys.readouterr().out
    latest = pg_store.config_versions.latest()
    assert latest is not None
    version, text = latest.version, latest.text
    # ${VAR} stays unexpanded: secrets live in each node's environment, not in the store.
    assert (version, text) == (1, config_path.read_text())
    assert "${NUMCFG_ARI_PASSWORD}" in text


def test_apply_defaults_to_the_configs_own_store(config_path: Path, capsys) -> None:
    assert main(["apply", "-c", str(config_path)]) == 0
    store = open_store(f"sqlite:///{config_path.parent / 'numcfg.sqlite3'}")
    try:
        latest = store.config_versions.latest()
        assert latest is not None
        assert (latest.version, latest.text) == (1, config_path.read_text())
    finally:
        store.close()


# -- watch_store_config on PostgreSQL -------------------------------------------------------------


async def test_a_publish_is_seen_by_the_watcher_within_2s(
    config_path: Path, config_text: str, pg_store: Store, pg_db_url: str
) -> None:
    received = Received()
    async with watching(pg_store, received):
        await asyncio.sleep(0.3)  # let it LISTEN; a publish before that is delivered anyway
        argv = ["apply", "-c", str(config_path), "--store", pg_db_url]
        assert await asyncio.to_thread(main, argv) == 0
        await received.wait_for(1)
    assert received.items == [(1, config_text)]


async def test_the_watcher_delivers_the_newest_version_at_start_then_only_newer(
    pg_store: Store,
) -> None:
    pg_store.config_versions.publish("one")
    pg_store.config_versions.publish("two")
    received = Received()
    async with watching(pg_store, received):
        await received.wait_for(2)
        await asyncio.to_thread(pg_store.config_versions.publish, "three")
        await received.wait_for(3)
    assert received.items == [(2, "two"), (3, "three")]


async def test_the_watcher_skips_versions_up_to_after(pg_store: Store) -> None:
    pg_store.config_versions.publish("known")
    received = Received()
    async with watching(pg_store, received, after=1):
        await asyncio.to_thread(pg_store.config_versions.publish, "new")
        await received.wait_for(2)
    assert received.items == [(2, "new")]


async def test_the_watcher_reconnects_after_losing_its_connection(
    pg_store: Store, pg_db_url: str
) -> None:
    received = Received()
    async with watching(pg_store, received):
        await asyncio.sleep(0.3)
        assert _terminate_listeners(pg_db_url) == 1
        # Published while the watcher is reconnecting: caught by the read after LISTEN.
        await asyncio.to_thread(pg_store.config_versions.publish, "after the cut")
        await received.wait_for(1)
    assert received.items == [(1, "after the cut")]


async def test_published_configs_reach_the_holder_and_a_bad_one_keeps_the_last_good(
    config_path: Path, config_text: str, pg_store: Store
) -> None:
    holder = ConfigHolder(config_path, env=ENV)
    good = config_text.replace("name: Paris main line", "name: Paris HQ")
    received = Received()

    def on_text(version: int, text: str) -> None:
        holder_sink(holder)(version, text)
        received(version, text)

    async with watching(pg_store, on_text):
        await asyncio.to_thread(pg_store.config_versions.publish, good)
        await received.wait_for(1)
        assert holder.current.numbers["paris"].name == "Paris HQ"
        assert (holder.generation, holder.last_error) == (1, None)

        await asyncio.to_thread(
            pg_store.config_versions.publish, good.replace("queue: sales", "queue: x")
        )
        await received.wait_for(2)
    assert holder.current.numbers["paris"].name == "Paris HQ"
    assert holder.generation == 1
    (issue,) = holder.last_error
    assert issue.file == "store:v2"
    assert issue.path == "numbers.paris.routing.queue"


# -- SQLite ----------------------------------------------------------------------------------------


async def test_on_sqlite_the_watcher_returns_at_once(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    try:
        async with asyncio.timeout(1):
            await watch_store_config(store, Received())
    finally:
        store.close()


async def test_on_sqlite_poll_fallback_polls(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    received = Received()
    try:
        async with watching(store, received, poll_fallback=0.05):
            await asyncio.to_thread(store.config_versions.publish, "polled")
            await received.wait_for(1)
    finally:
        store.close()
    assert received.items == [(1, "polled")]


def _terminate_listeners(db_url: str) -> int:
    """Kill the watcher's LISTEN connection as a server restart would; how many were killed."""
    url = make_url(db_url)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND query ILIKE 'LISTEN%%' AND pid <> pg_backend_pid()",
            (url.database,),
        ).fetchall()
    return len(rows)


# -- ConfigHolder.reload_text ----------------------------------------------------------------------


def test_reload_text_resolves_paths_beside_the_local_file(config_path: Path, config_text: str):
    holder = ConfigHolder(config_path, env=ENV)
    assert holder.reload_text(config_text + "storage: {recordings: rec}\n", "store:v1")
    assert holder.current.storage.recordings == str(config_path.parent.resolve() / "rec")
    assert holder.current.source_path == config_path.resolve()


def test_reload_text_with_errors_keeps_the_last_good(config_path: Path, config_text: str):
    holder = ConfigHolder(config_path, env=ENV)
    before = holder.current
    assert not holder.reload_text(config_text.replace("version: 1", "version: 2"), "store:v9")
    assert holder.current is before
    assert holder.generation == 0
    assert [(i.file, i.path) for i in holder.last_error] == [("store:v9", "version")]
