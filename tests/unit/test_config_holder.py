"""Reloads: a bad file never replaces a running config; a good one swaps atomically."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest

from asterisk_bridge.config import ConfigError, ConfigHolder

ENV = {"NUMCFG_ARI_PASSWORD": "ari-pass-123"}

GOOD = """\
version: 1
asterisk:
  ari_url: http://127.0.0.1:8088/ari
  username: numcfg
  password: ${NUMCFG_ARI_PASSWORD}
numbers:
  paris:
    number: "+33185000000"
    rating: RATING
"""

# Long enough for inotify set-up and watchfiles' debounce (1.6 s) several times over,
# short enough that a broken watch fails the suite quickly.
WATCH_TIMEOUT = 15.0


def write(path: Path, rating: str) -> None:
    path.write_text(GOOD.replace("RATING", rating))


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "numcfg.yaml"
    write(path, "false")
    return path


def test_first_load_failure_raises(tmp_path: Path) -> None:
    path = tmp_path / "numcfg.yaml"
    write(path, "perhaps")
    with pytest.raises(ConfigError):
        ConfigHolder(path, env=ENV)


def test_good_reload_swaps_and_bumps_generation(config_file: Path) -> None:
    holder = ConfigHolder(config_file, env=ENV)
    before = holder.current
    assert (holder.generation, holder.last_error) == (0, None)
    write(config_file, "true")
    assert holder.reload() is True
    assert holder.current.numbers["paris"].rating is True
    assert holder.generation == 1
    assert holder.last_error is None
    # A call that started before the reload still sees its own, unchanged config.
    assert before.numbers["paris"].rating is False


def test_broken_reload_keeps_current_and_says_why(
    config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = ConfigHolder(config_file, env=ENV)
    before = holder.current
    write(config_file, "perhaps")
    with caplog.at_level(logging.ERROR, logger="numcfg.config"):
        assert holder.reload() is False
    assert holder.current is before
    assert holder.generation == 0
    assert holder.last_error is not None
    assert [str(i) for i in holder.last_error] == [
        f"{config_file}:9:13: numbers.paris.rating: expected true or false"
    ]
    assert str(holder.last_error[0]) in caplog.text
    # Fixing the file clears the error.
    write(config_file, "true")
    assert holder.reload() is True
    assert (holder.generation, holder.last_error) == (1, None)


def test_reload_of_a_deleted_file_keeps_current(config_file: Path) -> None:
    holder = ConfigHolder(config_file, env=ENV)
    config_file.unlink()
    assert holder.reload() is False
    assert holder.last_error is not None
    assert "cannot read" in holder.last_error[0].message


async def test_watch_reloads_when_the_file_changes(config_file: Path) -> None:
    holder = ConfigHolder(config_file, env=ENV)
    watcher = asyncio.create_task(holder.watch())
    try:
        async with asyncio.timeout(WATCH_TIMEOUT):
            # The watch may not be armed yet when we first write, so write again until
            # it notices; each write is a real change a running service must pick up.
            while holder.generation == 0:
                write(config_file, "true")
                await asyncio.sleep(0.5)
        assert holder.current.numbers["paris"].rating is True
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
