"""App start and stop as one async context: parts torn down in reverse order, also after a
start that fails half-way (the API port taken). Runs against the fake ARI."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import yaml

from asterisk_bridge.app import App
from tests.fakeari.clients import APP, PASSWORD, USERNAME
from tests.fakeari.server import FakeAri

pytest_plugins = ["tests.fakeari.fixtures"]


def write_config(tmp_path: Path, fake: FakeAri, api_port: int) -> Path:
    path = tmp_path / "numcfg.yaml"
    data = {
        "version": 1,
        "asterisk": {
            "ari_url": fake.base_url,
            "username": USERNAME,
            "password": PASSWORD,
            "app": APP,
            "trunk": "Local/{number}@trunk",
        },
        "store": f"sqlite:///{tmp_path}/numcfg.sqlite3",
        "storage": {"recordings": str(tmp_path / "rec"), "voicemail": str(tmp_path / "vm")},
        "api": {"listen": f"127.0.0.1:{api_port}", "token": "t"},
        "numbers": {"paris": {"number": "+33185000000"}},
    }
    path.write_text(yaml.safe_dump(data))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_start_that_fails_on_a_taken_api_port_undoes_what_it_started(
    tmp_path: Path, fake_ari: FakeAri
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        app = App(write_config(tmp_path, fake_ari, taken.getsockname()[1]))
        with pytest.raises(OSError):
            await app.start()
    assert app._tasks, "the app started its background parts before the API"
    assert all(task.done() for task in app._tasks)
    assert app.client._session is None  # the ARI session is closed
    await asyncio.sleep(0.3)
    assert all(c.closed_at is not None for c in fake_ari.ws_connections)


async def test_stop_tears_down_in_reverse_order_and_twice_is_harmless(
    tmp_path: Path, fake_ari: FakeAri
) -> None:
    app = App(write_config(tmp_path, fake_ari, free_port()))
    events: list[str] = []
    stream_stop, client_close = app.stream.stop, app.client.close

    async def stopping_stream() -> None:
        events.append("stream")
        await stream_stop()

    async def closing_client() -> None:
        events.append("client")
        await client_close()

    app.stream.stop = stopping_stream  # type: ignore[method-assign]
    app.client.close = closing_client  # type: ignore[method-assign]
    async with app:
        assert await app.stream.wait_connected(5)
    # The event stream (started after the client) stops before the client closes.
    assert events == ["stream", "client"]
    assert all(task.done() for task in app._tasks)
    await app.stop()  # already stopped: nothing to do, no error


async def test_the_store_is_private_and_a_world_readable_config_is_warned_about(
    tmp_path: Path, fake_ari: FakeAri, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(tmp_path, fake_ari, free_port())
    path.chmod(0o644)
    async with App(path):
        pass
    assert (tmp_path / "numcfg.sqlite3").stat().st_mode & 0o777 == 0o600
    assert any("world-readable" in r.getMessage() for r in caplog.records)
