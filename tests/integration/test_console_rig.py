"""The console against the real rig (issue 13): a greeting and working hours saved in the
browser are what the next call hears, and the live board shows a waiting caller within a
second of the call starting."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from tests.browser.support import add_users, chromium, log_in

from .harness import Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

BASE = "http://127.0.0.1:18090"  # api.listen of the integration BASE_CONFIG
FRENCH_WELCOME = "sound:numcfg/fr/welcome"
# Monday 2026-11-30 10:00 in Paris: inside the office's hours.
MONDAY_OPEN = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
OFFICE = {"office": {"timezone": "Europe/Paris", "week": {"mon": "09:00-18:00"}}}


@pytest_asyncio.fixture(loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def test_a_greeting_and_hours_saved_in_the_console_are_heard_on_the_next_call(
    harness: Harness, numcfg, page: Page
) -> None:
    app = await numcfg({"schedules": OFFICE})
    app.services.clock = lambda: MONDAY_OPEN
    add_users(app.store)
    await log_in(page, BASE, "admin")
    await page.goto(f"{BASE}/console/numbers/paris")
    await page.get_by_label("Greeting (sound:...)").fill(FRENCH_WELCOME)
    await page.get_by_label("Schedule (empty: always open)").fill("office")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved.")
    leg = await harness.call("+33185000000")
    await harness.heard(leg, FRENCH_WELCOME)
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert harness.media_heard(leg) == [FRENCH_WELCOME]
    assert call["route"] == ["greeting", "hangup"]
    assert app.config_holder.current.numbers["paris"].working_hours.schedule == "office"


async def test_the_board_shows_a_waiting_caller_within_a_second(
    harness: Harness, numcfg, page: Page
) -> None:
    app = await numcfg(
        {
            "queues": {"sales": {"members": ["anna"], "max_wait": 20}},
            # No greeting: the caller joins the queue as soon as the call is answered.
            "numbers": {"paris": {"routing": {"greeting": None, "queue": "sales"}}},
        }
    )
    add_users(app.store)
    await log_in(page, BASE, "sam")
    await page.goto(f"{BASE}/console/board")
    await expect(page.locator("#live")).to_have_text("Updated live")
    started = time.monotonic()  # the call starts when the caller dials
    leg = await harness.call("+33185000000", caller="+33611223344")
    waiting = page.locator('[data-queue="sales"] .waiting li[data-call]')
    await waiting.first.wait_for(timeout=5000)
    latency = time.monotonic() - started
    print(f"board: the waiting caller was shown {latency:.2f} s after the call started")
    assert latency < 1.0, f"shown {latency:.2f} s after the call started"
    await expect(waiting.first).to_contain_text("+33611223344")
    await expect(page.locator('[data-queue="sales"] .count')).to_have_text("1")
    if shots := os.environ.get("NUMCFG_CONSOLE_SCREENSHOTS"):  # the README's picture
        await page.screenshot(path=Path(shots) / "board-waiting.png", full_page=True)
    await harness.hangup(leg)
    await harness.ended(leg)
    await expect(page.locator('[data-queue="sales"] .count')).to_have_text("0", timeout=2000)
    (call,) = await calls_done(app)
    assert call["route"] == ["queue:sales"] and call["disposition"] == "abandoned"
