"""The console (SPEC section 11) in Debian's chromium: login, saving settings, CSRF, what an
employee may open, a recording in the page, and the live board."""

from __future__ import annotations

import asyncio
import math
import struct
import time
import wave
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from asterisk_bridge.store import CallDetails
from tests.unit.test_holdmusic_support import make_mp3

from .conftest import Console
from .support import PASSWORD, log_in

pytestmark = pytest.mark.asyncio(loop_scope="session")


def call_details(call_id: str, *, employee: str, recording: str | None = None) -> CallDetails:
    return CallDetails.from_json(
        {
            "id": call_id,
            "number": "paris",
            "direction": "incoming",
            "caller": "+33612345678",
            "callee": "+33185000000",
            "employee": employee,
            "started_at": "2026-12-01T09:00:00+01:00",
            "answered_at": "2026-12-01T09:00:05+01:00",
            "ended_at": "2026-12-01T09:00:47+01:00",
            "duration": 42,
            "disposition": "answered",
            "route": ["greeting", "queue:sales", f"employee:{employee}", "rating:5"],
            "recording": {"file": recording, "seconds": 2} if recording else None,
            "recording_skipped": None,
            "rating": 5,
            "transcript": "hello, I would like to change my order",
            "crm": None,
        }
    )


def write_tone(path: Path, seconds: float = 2.0, rate: int = 8000) -> None:
    """A 440 Hz tone, 8 kHz mono 16-bit: the format numcfg's recordings have."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * n / rate)))
        for n in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)


# -- login --------------------------------------------------------------------------------


async def test_logging_in_with_the_form_opens_the_numbers_and_a_wrong_password_does_not(
    console: Console, page: Page
) -> None:
    await log_in(page, console.base, "admin", "not-the-password")
    await expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    assert page.url.endswith("/console/login")
    await log_in(page, console.base, "admin")
    assert page.url.endswith("/console/numbers")
    await expect(page.get_by_role("link", name="Paris main line")).to_be_visible()
    cookie = next(c for c in await page.context.cookies() if c["name"] == "numcfg_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert not cookie["secure"]  # plain HTTP on loopback here; Secure behind TLS


async def test_repeated_failed_logins_are_slowed_down(console: Console) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(f"{console.base}/console/login") as resp:
            csrf = _csrf(await resp.text())
        timings = []
        for _ in range(5):
            started = time.monotonic()
            form = {"csrf_token": csrf, "name": "sam", "password": "wrong-password"}
            async with http.post(f"{console.base}/console/login", data=form) as resp:
                assert resp.status == 401
            timings.append(time.monotonic() - started)
    assert max(timings[:3]) < 1.0  # the first mistakes cost nothing
    assert timings[3] >= 1.0 and timings[4] >= 2.0  # then each waits twice as long


def _csrf(html: str) -> str:
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


# -- settings -----------------------------------------------------------------------------


async def test_a_bad_value_is_shown_at_its_field_and_the_file_stays_byte_for_byte(
    console: Console, page: Page
) -> None:
    before = console.config_path.read_bytes()
    generation = console.app.config_holder.generation
    await log_in(page, console.base, "admin")
    await page.goto(f"{console.base}/console/numbers/paris")
    await page.locator('[name="routing.queue"]').fill("sales2")
    await page.locator('[name="routing.greeting"]').fill("sound:numcfg/fr/welcome")
    await page.get_by_role("button", name="Save").click()
    field = page.locator('[name="routing.queue"]')
    await expect(field).to_have_attribute("aria-invalid", "true")
    error = page.locator("#err-f-routing-queue")
    await expect(error).to_have_text("unknown queue 'sales2'")
    assert await field.get_attribute("aria-describedby") == "err-f-routing-queue"
    await expect(field).to_have_value("sales2")  # what was typed is kept for correcting
    assert console.config_path.read_bytes() == before
    assert console.app.config_holder.generation == generation
    assert console.app.config_holder.current.numbers["paris"].routing.greeting == (
        "sound:numcfg/en/welcome"
    )


async def test_saving_writes_only_the_changed_lines_and_the_service_reloads(
    console: Console, page: Page
) -> None:
    before = console.config_path.read_text()
    await log_in(page, console.base, "admin")
    await page.goto(f"{console.base}/console/numbers/paris")
    await page.get_by_label("Greeting (sound:...)").fill("sound:numcfg/fr/welcome")
    await page.get_by_label("Schedule (empty: always open)").fill("office")
    await page.get_by_label("Record all calls").check()
    async with page.expect_navigation():
        await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved.")
    after = console.config_path.read_text()
    expected = before.replace(
        "greeting: sound:numcfg/en/welcome   # the welcome prompt",
        "greeting: sound:numcfg/fr/welcome   # the welcome prompt",
    ).replace(
        '    backup_number: "+33600000001"\n',
        '    backup_number: "+33600000001"\n    recording:\n      record_all: true\n'
        "    working_hours:\n      schedule: office\n",
    )
    assert after == expected  # comments, quotes, flow maps and blank lines as written
    number = console.app.config_holder.current.numbers["paris"]
    assert number.routing.greeting == "sound:numcfg/fr/welcome"
    assert number.working_hours.schedule == "office"
    assert number.recording.record_all is True
    assert console.config_path.stat().st_mode & 0o777 == 0o600


async def test_a_schedule_saved_on_the_schedules_page_sets_the_working_hours(
    console: Console, page: Page
) -> None:
    await log_in(page, console.base, "admin")
    await page.goto(f"{console.base}/console/schedules")
    await page.get_by_label("Wednesday").fill("09:00-12:00, 14:00-17:00")
    await page.get_by_label("Monday").fill("25:00-26:00")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator('[name="schedules.office.week.mon"]')).to_have_attribute(
        "aria-invalid", "true"
    )
    assert "wed" not in console.app.config_holder.current.schedules["office"].week
    await page.get_by_label("Monday").fill("")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Save").click()
    week = console.app.config_holder.current.schedules["office"].week
    assert week == {"tue": "09:00-18:00", "wed": "09:00-12:00, 14:00-17:00"}


async def test_a_form_post_without_its_csrf_token_is_refused_and_changes_nothing(
    console: Console, page: Page
) -> None:
    before = console.config_path.read_bytes()
    await log_in(page, console.base, "admin")
    await page.goto(f"{console.base}/console/numbers/paris")
    await page.locator("#settings [name=csrf_token]").evaluate("input => input.remove()")
    await page.get_by_label("Greeting (sound:...)").fill("sound:numcfg/fr/welcome")
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.get_by_role("button", name="Save").click()
    assert (await answer.value).status == 403
    await expect(page.get_by_role("alert")).to_contain_text("did not come from this console")
    assert console.config_path.read_bytes() == before
    # And a workday change forged from another site's form (no token) is refused too.
    await page.goto(f"{console.base}/console/board")
    status = await page.evaluate(
        """async () => (await fetch('/console/employees/anna/workday',
             {method: 'POST', body: new URLSearchParams({action: 'start'})})).status"""
    )
    assert status == 403
    assert console.app.store.people.workday("anna") is None


async def test_a_supervisor_sees_the_settings_but_cannot_save_them(
    console: Console, page: Page
) -> None:
    await log_in(page, console.base, "sam")
    await page.goto(f"{console.base}/console/numbers/paris")
    await expect(page.locator('[name="routing.queue"]')).to_be_disabled()
    assert await page.locator("#save").count() == 0
    status = await page.evaluate(
        """async () => {
          const csrf = document.querySelector('[name=csrf_token]').value;
          const body = new URLSearchParams({csrf_token: csrf, 'routing.queue': 'sales'});
          return (await fetch('/console/numbers/paris', {method: 'POST', body})).status;
        }"""
    )
    assert status == 403


# -- calls --------------------------------------------------------------------------------


async def test_an_employee_sees_her_calls_and_gets_403_for_anothers(
    console: Console, page: Page
) -> None:
    store = console.app.store
    await asyncio.to_thread(store.calls.save, call_details("call-anna", employee="anna"))
    await asyncio.to_thread(store.calls.save, call_details("call-boris", employee="boris"))
    await log_in(page, console.base, "boris")
    assert page.url.endswith("/console/calls")
    rows = page.locator("#calls tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("boris")
    response = await page.goto(f"{console.base}/console/calls/call-anna")
    assert response is not None and response.status == 403
    response = await page.goto(f"{console.base}/console/calls/call-anna/recording")
    assert response is not None and response.status == 403
    response = await page.goto(f"{console.base}/console/calls/call-boris")
    assert response is not None and response.status == 200
    await expect(page.locator("#transcript")).to_have_text("hello, I would like to change my order")
    response = await page.goto(f"{console.base}/console/board")
    assert response is not None and response.status == 403


async def test_a_recording_plays_in_the_call_page(console: Console, page: Page) -> None:
    folder = Path(console.app.config_holder.current.storage.recordings)
    write_tone(folder / "call-rec.wav")
    details = call_details("call-rec", employee="anna", recording="call-rec.wav")
    await asyncio.to_thread(console.app.store.calls.save, details)
    await log_in(page, console.base, "sam")
    await page.goto(f"{console.base}/console/calls?employee=anna")
    async with page.expect_navigation():
        await page.get_by_role("link", name="2026-12-01 09:00:00").first.click()
    await expect(page.locator("#route li")).to_have_text(
        ["greeting", "queue:sales", "employee:anna", "rating:5"]
    )
    await expect(page.locator("#rating")).to_have_text("5")
    audio = page.locator("audio#recording")
    await expect(audio).to_have_attribute("src", "/console/calls/call-rec/recording")
    duration = await audio.evaluate(
        """audio => new Promise((done, fail) => {
          if (audio.readyState >= 1) return done(audio.duration);
          audio.addEventListener('loadedmetadata', () => done(audio.duration));
          audio.addEventListener('error', () => fail(String(audio.error && audio.error.code)));
          audio.load();
        })"""
    )
    assert duration == pytest.approx(2.0, abs=0.05)
    played = await audio.evaluate(
        """async audio => { await audio.play();
          await new Promise(r => setTimeout(r, 500)); audio.pause(); return audio.currentTime; }"""
    )
    assert played > 0.1  # the browser decoded and played the file


# -- live board ---------------------------------------------------------------------------


async def _board_state(page: Page, employee: str) -> Any:
    row = page.locator(f'[data-employee="{employee}"] .workday')
    return await row.get_attribute("data-state")


async def test_the_board_shows_a_workday_change_made_elsewhere_within_a_second(
    console: Console, browser: Browser, page: Page
) -> None:
    await log_in(page, console.base, "sam")
    await page.goto(f"{console.base}/console/board")
    await expect(page.locator("#live")).to_have_text("Updated live")
    assert await _board_state(page, "anna") == "not_started"
    # From a script, through the API (its bearer token keeps working beside the console).
    headers = {"Authorization": f"Bearer {console.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        url = f"{console.base}/api/employees/anna/workday"
        async with http.post(url, json={"state": "working"}) as resp:
            assert resp.status == 200
        changed = time.monotonic()
    await page.wait_for_function(
        """() => document.querySelector('[data-employee="anna"] .workday').dataset.state
                 === 'working'""",
        timeout=1000,
    )
    assert time.monotonic() - changed < 1.0
    # From another page: anna pauses her own day on her calls page.
    other = await browser.new_context()
    try:
        anna = await other.new_page()
        await log_in(anna, console.base, "anna")
        async with anna.expect_navigation():
            await anna.get_by_role("button", name="Pause").click()
        changed = time.monotonic()
        await page.wait_for_function(
            """() => document.querySelector('[data-employee="anna"] .workday').dataset.state
                     === 'paused'""",
            timeout=1000,
        )
        assert time.monotonic() - changed < 1.0
        assert await page.locator('[data-employee="anna"] .workday').inner_text() == "paused"
    finally:
        await other.close()


async def test_a_supervisor_sets_a_workday_from_the_board(console: Console, page: Page) -> None:
    await log_in(page, console.base, "sam")
    await page.goto(f"{console.base}/console/board")
    async with page.expect_navigation():
        await page.locator('[data-employee="boris"] button[data-action="start"]').click()
    assert await _board_state(page, "boris") == "working"
    assert str(console.app.store.people.workday("boris")) == "working"


async def test_the_console_speaks_french(console: Console, page: Page) -> None:
    await log_in(page, console.base, "admin")
    await page.goto(f"{console.base}/console/numbers/paris?lang=fr")
    await expect(page.get_by_label("Message d'accueil (sound:...)")).to_have_value(
        "sound:numcfg/en/welcome"
    )
    await page.goto(f"{console.base}/console/board")  # the choice is remembered
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Tableau en direct")
    assert PASSWORD  # the same users log in whatever the language


# -- hold music ---------------------------------------------------------------------------


async def test_hold_music_uploads_from_the_page_and_a_stereo_file_is_refused(
    console: Console, page: Page, tmp_path: Path
) -> None:
    mono = make_mp3(tmp_path / "mono.mp3")
    stereo = make_mp3(tmp_path / "stereo.mp3", channels=2)
    store = console.app.store
    await log_in(page, console.base, "admin")
    await page.goto(f"{console.base}/console/numbers/paris")
    await page.get_by_label("Upload hold music (MP3, mono, at most 2 MB)").set_input_files(stereo)
    await page.get_by_role("button", name="Upload", exact=True).click()
    await expect(page.locator("#problem")).to_contain_text("stereo MP3: upload a mono file")
    assert await asyncio.to_thread(store.hold_music.upload_path, "paris") is None
    await page.get_by_label("Upload hold music (MP3, mono, at most 2 MB)").set_input_files(mono)
    await page.get_by_role("button", name="Upload", exact=True).click()
    await expect(page.locator("#notice")).to_contain_text("Hold music uploaded")
    installed = await asyncio.to_thread(store.hold_music.upload_path, "paris")
    assert installed is not None and await asyncio.to_thread(Path(installed).is_file)
