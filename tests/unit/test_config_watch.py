"""What wakes the config watcher (issue 15): a save of the config file, once per burst,
whether written in place or renamed over it; never the SQLite store's commits beside it
(the default layout), which woke the previous watcher a few times a second under calls."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from asterisk_bridge.config import watch
from asterisk_bridge.config.watch import asyncinotify

LINUX = pytest.mark.skipif(asyncinotify is None, reason="inotify is Linux's")


class Saves:
    """Counts what a watcher yields, from a task started (and armed) before the test acts."""

    def __init__(self, saves: AsyncIterator[None]) -> None:
        self.count = 0
        self._saves = saves
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for _ in self._saves:
            async with self._changed:
                self.count += 1
                self._changed.notify_all()

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.count >= count)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def watching(saves: AsyncIterator[None]) -> AsyncIterator[Saves]:
    counter = Saves(saves)
    await asyncio.sleep(0.2)  # the watch is armed at the iterator's first step
    try:
        yield counter
    finally:
        await counter.close()


def config(tmp_path: Path) -> Path:
    path = tmp_path / "numcfg.yaml"
    path.write_text("version: 1\n")
    return path


@LINUX
async def test_a_rename_over_the_file_and_a_write_in_place_are_one_save_each(
    tmp_path: Path,
) -> None:
    path = config(tmp_path)
    async with watching(watch.file_saves(path)) as saves:
        new = tmp_path / ".numcfg.yaml.tmp"
        new.write_text("version: 1\n# edited\n")
        os.replace(new, path)  # an editor's atomic save
        await saves.wait_for(1)
        path.write_text("version: 1\n# edited again\n")  # in place
        await saves.wait_for(2)
        await asyncio.sleep(2 * watch.SAVE_QUIET_SECONDS)
        assert saves.count == 2


@LINUX
async def test_a_burst_of_writes_is_one_save(tmp_path: Path) -> None:
    path = config(tmp_path)
    async with watching(watch.file_saves(path)) as saves:
        for n in range(4):
            path.write_text(f"version: 1\n# {n}\n")
            await asyncio.sleep(watch.SAVE_QUIET_SECONDS / 4)
        await saves.wait_for(1)
        await asyncio.sleep(2 * watch.SAVE_QUIET_SECONDS)
        assert saves.count == 1


@LINUX
async def test_the_sqlite_stores_commits_beside_the_file_wake_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loop's reader of the inotify descriptor: called once per wake by the kernel.
    wakes: list[int] = []
    read_events = asyncinotify.Inotify._get

    def counting(self: asyncinotify.Inotify, future: Any) -> None:
        wakes.append(1)
        read_events(self, future)

    monkeypatch.setattr(asyncinotify.Inotify, "_get", counting)
    path = config(tmp_path)
    db = sqlite3.connect(tmp_path / "numcfg.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE calls (id INTEGER PRIMARY KEY, record TEXT)")
    got: list[None] = []
    saves = watch.file_saves(path)
    reader = asyncio.create_task(anext(saves))
    try:
        await asyncio.sleep(0.2)
        for n in range(50):  # a call's notes, many times over
            db.execute("INSERT INTO calls (record) VALUES (?)", (f"call {n}",))
            await asyncio.sleep(0.01)
        await asyncio.sleep(2 * watch.SAVE_QUIET_SECONDS)
        assert wakes == []  # the kernel never woke the loop for them
        assert not reader.done()
        path.write_text("version: 1\n# saved\n")
        got.append(await asyncio.wait_for(reader, 5))
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await reader
        await saves.aclose()
        db.close()
    assert got == [None]


async def test_the_watchfiles_fallback_yields_a_save_of_the_file_only(tmp_path: Path) -> None:
    path = config(tmp_path)
    async with watching(watch._watchfiles_saves(tmp_path, path.name)) as saves:
        (tmp_path / "other.txt").write_text("not the config")
        await asyncio.sleep(watch.WATCH_STEP_MS / 1000 * 2.5)
        assert saves.count == 0
        path.write_text("version: 1\n# saved\n")
        await saves.wait_for(1, timeout=10)
