"""pytest fixtures running the real App against FakeAri (see engine.py). Load as a plugin:

    pytest_plugins = ["tests.fakeari.fixtures", "tests.fakeari.engine_fixtures"]

Kept apart from engine.py so test modules import `Engine` for type hints without
importing this plugin before pytest can rewrite its asserts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from asterisk_bridge import app as app_module
from asterisk_bridge.ari import client as client_module
from asterisk_bridge.ari import media as media_module
from asterisk_bridge.ari import stream as stream_module
from asterisk_bridge.calls import callback as callback_module
from asterisk_bridge.calls import queue as queue_module

from .engine import Engine, StartEngine, start_engine, stop_engine
from .server import FakeAri


@pytest.fixture
def fast_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink the engine's waits that exist for a real network or a real person, so a
    websocket gap heals in tens of milliseconds and a queue re-checks within a moment.
    Timeouts that are the behaviour under test (RECORDING_STOP_SECONDS, the drain's) are
    left alone; a test patches others itself (PLAYBACK_START_TIMEOUT_SECONDS)."""
    monkeypatch.setattr(stream_module, "BACKOFF_INITIAL_SECONDS", 0.02)
    monkeypatch.setattr(stream_module, "BACKOFF_MAX_SECONDS", 0.1)
    monkeypatch.setattr(client_module, "WS_REST_PROBE_SECONDS", 0.5)
    monkeypatch.setattr(app_module, "RECONCILE_GRACE_SECONDS", 0.05)
    monkeypatch.setattr(media_module, "PLAYBACK_START_TIMEOUT_SECONDS", 1.0)
    monkeypatch.setattr(queue_module, "RECHECK_SECONDS", 0.2)
    monkeypatch.setattr(callback_module, "CALLBACK_SCAN_SECONDS", 0.05)


@pytest.fixture
async def start_engine_app(
    fake_ari: FakeAri, tmp_path: Path, fast_engine: None
) -> AsyncIterator[StartEngine]:
    """Factory: `engine = await start_engine_app({...override...})`, one App per test,
    drained and stopped at teardown even when the test failed half-way."""
    engines: list[Engine] = []

    async def start(override: dict[str, Any] | None = None) -> Engine:
        engine = await start_engine(fake_ari, tmp_path, override)
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        await stop_engine(engine)


@pytest.fixture
async def engine(start_engine_app: StartEngine) -> Engine:
    """An App with BASE_CONFIG (a number routed to a one-member queue)."""
    return await start_engine_app()
