"""Fault-suite fixtures (issue 17): the integration rig, harness and in-process numcfg,
plus the loop-stall ticker and the session's figures line.

The harness here is package-scoped: it is stopped when the fault suite ends, so the
integration suite's own (session) harness, connected as the same ARI app, never fights it
for the app name in a `make test` run."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from asterisk_bridge.app import App
from asterisk_bridge.ari.client import AriClient
from tests.integration.conftest import (
    ARI_PASSWORD,
    ARI_URL,
    ARI_USER,
    _no_leftovers,
    asterisk_rig,
    install_dialplan,
    write_config,
)
from tests.integration.harness import TEST_APP, Harness

from .checks import with_check
from .figures import FIGURES, TICKER

__all__ = ["_no_leftovers", "asterisk_rig"]


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def harness(asterisk_rig: str) -> AsyncIterator[Harness]:
    session = aiohttp.ClientSession()
    client = AriClient(base_url=ARI_URL, username=ARI_USER, password=ARI_PASSWORD, app=TEST_APP)
    h = Harness(
        client=client,
        session=session,
        ws_url=f"ws://127.0.0.1:8088/ari/events?app={TEST_APP}&subscribeAll=true",
    )
    await h.start()
    yield h
    await h.stop()
    await client.close()
    await session.close()


@pytest_asyncio.fixture(scope="package", loop_scope="session", autouse=True)
async def _loop_ticker() -> AsyncIterator[None]:
    TICKER.start()
    yield
    await TICKER.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def numcfg(
    harness: Harness, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    """`app = await numcfg({...})` runs numcfg in-process on the test config plus the
    check number (checks.with_check); the loop is measured while it takes calls."""
    apps: list[App] = []
    harness.reset()

    async def start(override: dict[str, Any] | None = None, *, check: bool = True) -> App:
        config = with_check(override or {}) if check else override
        path = write_config(tmp_path, config)
        os.chmod(path, 0o600)
        install_dialplan(path)
        app = App(path)
        await app.start()
        assert await app.stream.wait_connected(10), "numcfg did not connect to ARI"
        apps.append(app)
        TICKER.take()
        TICKER.measuring = True
        return app

    yield start
    TICKER.measuring = False
    FIGURES.stall(request.node.name, *TICKER.take())
    for app in apps:
        await app.drain(timeout=10)
        await app.stop()
    await harness.assert_clean()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and "tests/faults/" in report.nodeid:
        FIGURES.tests += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES.tests:
        return
    line = FIGURES.line()
    terminalreporter.write_line(line)
    FIGURES.write()
