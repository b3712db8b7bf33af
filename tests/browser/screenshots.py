"""The README's console screenshots: `python -m tests.browser.screenshots docs/console`.

Runs the real App in-process (no Asterisk, as the browser tests do), with a few call
details and workdays in its store, and saves PNGs of the main pages from Debian's
chromium. The board with a waiting caller comes from the rig test
(tests/integration/test_console_rig.py, with NUMCFG_CONSOLE_SCREENSHOTS=docs/console).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from asterisk_bridge.app import App

from .conftest import CONFIG, TOKEN, free_port
from .support import add_users, chromium, log_in
from .test_console import call_details, write_tone


async def shoot(out: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "numcfg.yaml"
        port = free_port()
        text = CONFIG.format(ari_port=free_port(), api_port=port, folder=folder, token=TOKEN)
        path.write_text(text)
        path.chmod(0o600)
        app = App(path)
        await app.start()
        try:
            add_users(app.store)
            write_tone(Path(folder) / "recordings" / "c2.wav")
            for call_id, employee, recording in (("c1", "boris", None), ("c2", "anna", "c2.wav")):
                app.store.calls.save(call_details(call_id, employee=employee, recording=recording))
            app.store.people.set_workday("anna", "working")  # type: ignore[arg-type]
            app.store.people.set_workday("boris", "paused")  # type: ignore[arg-type]
            await _pages(f"http://127.0.0.1:{port}", out)
        finally:
            await app.stop()


async def _pages(base: str, out: Path) -> None:
    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": 1100, "height": 800})
        page = await context.new_page()
        await page.goto(f"{base}/console/login")
        await page.screenshot(path=out / "login.png")
        await log_in(page, base, "admin")
        for name, url in (
            ("numbers", "/console/numbers"),
            ("number-settings", "/console/numbers/paris"),
            ("schedules", "/console/schedules"),
            ("people", "/console/people"),
            ("calls", "/console/calls"),
            ("call", "/console/calls/c2"),
            ("board", "/console/board"),
        ):
            await page.goto(base + url)
            await page.screenshot(path=out / f"{name}.png", full_page=True)
        await page.goto(f"{base}/console/numbers/paris")
        await page.locator('[name="routing.queue"]').fill("sales2")
        await page.get_by_role("button", name="Save").click()
        await page.locator("#err-f-routing-queue").wait_for()
        await page.locator("#f-routing-queue").evaluate(
            "el => el.scrollIntoView({block: 'center'})"
        )
        await page.screenshot(path=out / "number-settings-error.png")
        await page.goto(f"{base}/console/numbers/paris?lang=fr")
        await page.screenshot(path=out / "number-settings-fr.png")
        phone = await browser.new_context(viewport={"width": 390, "height": 844})
        await phone.add_cookies(await context.cookies())
        mobile = await phone.new_page()
        await mobile.goto(f"{base}/console/board?lang=en")
        await mobile.screenshot(path=out / "board-phone.png", full_page=True)
        await mobile.goto(f"{base}/console/numbers/paris")
        await mobile.screenshot(path=out / "number-settings-phone.png")
        await phone.close()
        await context.close()


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console")
    target.mkdir(parents=True, exist_ok=True)
    asyncio.run(shoot(target))
