"""Integration fixtures: the real Asterisk rig, the test harness, numcfg in-process."""

from __future__ import annotations

import asyncio
import copy
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml

from asterisk_bridge.app import App
from asterisk_bridge.ari.client import AriClient
from asterisk_bridge.config import render_dialplan

from .harness import TEST_APP, Harness

REPO = Path(__file__).resolve().parents[2]
RIG = REPO / "docker" / "rig"
ARI_URL = "http://127.0.0.1:8088/ari"
ARI_USER = os.environ.setdefault("NUMCFG_ARI_USER", "numcfg")
ARI_PASSWORD = os.environ.setdefault("NUMCFG_ARI_PASSWORD", "numcfg-dev-secret")

pytestmark = pytest.mark.integration

# The config every integration test starts from; tests override parts of it.
BASE_CONFIG: dict[str, Any] = {
    "version": 1,
    "asterisk": {
        "ari_url": ARI_URL,
        "username": "${NUMCFG_ARI_USER}",
        "password": "${NUMCFG_ARI_PASSWORD}",
        "app": "numcfg",
        "trunk": "Local/{number}@numcfg-test-trunk",
    },
    "api": {"listen": "127.0.0.1:18090", "token": "test-token"},
    "account": {"timezone": "Europe/Paris", "external_allowlist": ["+33*"], "plan": "professional"},
    "employees": {
        "anna": {
            "name": "Anna Martin",
            "extension": "101",
            "endpoint": "Local/101@numcfg-test-employees",
            "mobile": "+33612340101",
        },
        "boris": {
            "name": "Boris Leroy",
            "extension": "102",
            "endpoint": "Local/102@numcfg-test-employees",
            "mobile": "+33612340102",
        },
        "chloe": {
            "name": "Chloe Petit",
            "extension": "103",
            "endpoint": "Local/103@numcfg-test-employees",
        },
    },
    "numbers": {
        "paris": {
            "number": "+33185000000",
            "name": "Paris main line",
            "routing": {"greeting": "sound:numcfg/en/welcome"},
            "backup_number": "+33600000001",
        },
    },
}


def rig(*args: str) -> str:
    env = {**os.environ, "NUMCFG_ARI_PASSWORD": ARI_PASSWORD, "NUMCFG_ARI_USER": ARI_USER}
    result = subprocess.run(
        [str(RIG), *args], env=env, check=True, capture_output=True, text=True, timeout=600
    )
    return result.stdout


def kill_ari_websockets(app: str) -> int:
    """Shut down Asterisk's side of every ARI websocket serving `app` (as a network drop or
    an Asterisk-side failure would). Returns how many were cut."""
    cut = 0
    for line in rig("cli", "ari show websocket sessions").splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[1] == "inbound" and app in fields[4].split(","):
            rig("cli", f"ari shutdown websocket session {fields[0]}")
            cut += 1
    return cut


async def start_service(
    config: Path, stderr: Path | None = None, options: tuple[str, ...] = ()
) -> asyncio.subprocess.Process:
    """`numcfg [options] run` as its own process, once its /ready answers 200 (its log to
    `stderr`)."""
    log = stderr.open("ab") if stderr else None
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asterisk_bridge.cli",
        *options,
        "run",
        "-c",
        str(config),
        cwd=REPO,
        env={**os.environ},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log or asyncio.subprocess.DEVNULL,
    )
    if log:
        log.close()  # the child has its own copy
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 20
        while True:
            try:
                async with http.get("http://127.0.0.1:18090/ready") as resp:
                    if resp.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, "numcfg run did not become ready"
            await asyncio.sleep(0.2)


@pytest.fixture(scope="session")
def asterisk_rig() -> str:
    """Start (or reuse) the rig once per test session."""
    rig("up")
    return rig("root").strip()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
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


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


_installed_dialplan: list[str] = []


def write_config(tmp_path: Path, override: dict[str, Any] | None = None) -> Path:
    data = deep_merge(BASE_CONFIG, override or {})
    data.setdefault("store", f"sqlite:///{tmp_path}/numcfg.sqlite3")
    data.setdefault(
        "storage",
        {"recordings": str(tmp_path / "recordings"), "voicemail": str(tmp_path / "voicemail")},
    )
    path = tmp_path / "numcfg.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def install_dialplan(config_path: Path, env: dict[str, str] | None = None) -> None:
    """The numcfg contexts of this config on the rig (skipped when already there); `env`
    expands the config's ${VAR}s instead of this process's environment."""
    from asterisk_bridge.config import load_config

    text = render_dialplan(load_config(config_path, env=env))
    if _installed_dialplan and _installed_dialplan[-1] == text:
        return
    target = config_path.with_suffix(".dialplan.conf")
    target.write_text(text)
    rig("dialplan", str(target))
    _installed_dialplan.append(text)


StartApp = Callable[..., Awaitable[App]]


@pytest_asyncio.fixture(loop_scope="session")
async def numcfg(harness: Harness, tmp_path: Path) -> AsyncIterator[StartApp]:
    """Factory: `app = await numcfg({...config override...})` runs numcfg in-process."""
    apps: list[App] = []
    harness.reset()

    async def start(override: dict[str, Any] | None = None) -> App:
        path = write_config(tmp_path, override)
        install_dialplan(path)
        app = App(path)
        await app.start()
        assert await app.stream.wait_connected(10), "numcfg did not connect to ARI"
        apps.append(app)
        return app

    yield start
    for app in apps:
        await app.drain(timeout=10)
        await app.stop()
    await harness.assert_clean()


@pytest_asyncio.fixture(loop_scope="session", autouse=True)
async def _no_leftovers(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "harness" in request.fixturenames:
        h: Harness = request.getfixturevalue("harness")
        await h.assert_clean()
