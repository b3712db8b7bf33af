"""The console in a real browser (Debian's chromium, headless), against the real App
serving its HTTP listener in-process. No Asterisk: ARI points at a closed port, so the
App runs degraded (/ready says ARI is down) while everything the console needs works."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest_asyncio
from playwright.async_api import Browser, Page

from asterisk_bridge.app import App

from .support import add_users, chromium

TOKEN = "browser-test-token"
CONFIG = """\
# numcfg for the console's browser tests
version: 1

asterisk:
  ari_url: http://127.0.0.1:{ari_port}/ari   # nothing listens: no Asterisk needed
  username: numcfg
  password: not-used-here
  app: numcfg-browser

store: sqlite:///{folder}/numcfg.sqlite3
api:
  listen: 127.0.0.1:{api_port}
  token: {token}

account:
  timezone: Europe/Paris
  external_allowlist: ["+33*"]

storage:
  recordings: {folder}/recordings

employees:
  anna:
    name: Anna Martin
    extension: "101"
    endpoint: PJSIP/101
  boris:
    name: Boris Leroy
    extension: "102"
    endpoint: PJSIP/102

queues:
  sales:
    members: [anna, boris]    # both answer sales calls

schedules:
  office:
    week: {{mon: "09:00-18:00", tue: "09:00-18:00"}}

numbers:
  paris:
    number: "+33185000000"
    name: Paris main line
    routing:
      greeting: sound:numcfg/en/welcome   # the welcome prompt
      queue: sales
    backup_number: "+33600000001"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Console:
    app: App
    base: str
    config_path: Path
    token: str = TOKEN


@pytest_asyncio.fixture(loop_scope="session")
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    path = tmp_path / "numcfg.yaml"
    api_port = free_port()
    path.write_text(
        CONFIG.format(ari_port=free_port(), api_port=api_port, folder=tmp_path, token=TOKEN)
    )
    path.chmod(0o600)
    app = App(path)
    await app.start()
    add_users(app.store)
    try:
        yield Console(app=app, base=f"http://127.0.0.1:{api_port}", config_path=path)
    finally:
        await app.stop()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()  # its own cookies: a fresh visitor per test
    page = await context.new_page()
    try:
        yield page
    finally:
        await context.close()
