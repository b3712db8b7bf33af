"""Browser-test helpers shared by tests/browser and the rig's console tests: Debian's
chromium driven by Playwright, console users, logging in."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final

from playwright.async_api import Browser, Page, async_playwright

from asterisk_bridge.console.passwords import hash_password
from asterisk_bridge.store import Store

CHROMIUM: Final = "/usr/bin/chromium"
# Playwright starts it with a fresh temporary profile (its own user-data-dir) each launch;
# these switches keep Debian's chromium from reaching out to the network on its own.
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",  # the recording test presses play by script
]
PASSWORD: Final = "console-pass-123"
# (name, role, employee) of the users every console test logs in as.
USERS: Final = (
    ("admin", "admin", None),
    ("sam", "supervisor", None),
    ("anna", "employee", "anna"),
    ("boris", "employee", "boris"),
)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


def add_users(store: Store) -> None:
    password_hash = hash_password(PASSWORD)
    for name, role, employee in USERS:
        if store.users.get(name) is None:
            store.users.add(name, password_hash=password_hash, role=role, employee=employee)


async def log_in(page: Page, base: str, name: str, password: str = PASSWORD) -> Any:
    await page.goto(f"{base}/console/login")
    await page.get_by_label("User name").fill(name)
    await page.get_by_label("Password").fill(password)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Log in").click()
    return page
