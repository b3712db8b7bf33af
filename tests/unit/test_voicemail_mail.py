"""Voicemail emailed to its employee (SPEC section 13), against a local SMTP server that
speaks STARTTLS with a self-signed certificate made for the test (tests/unit/test_mail.py):
the WAV is attached, the password went over TLS, the call never waits for the mail, and a
server that stays down is tried a few times, then given up with a log line."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import logging
import ssl
import time
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from asterisk_bridge.config import Config, ConfigError, load_config_text
from asterisk_bridge.policy.types import Direction, Disposition
from asterisk_bridge.store import CallDetails
from asterisk_bridge.voicemail_mail import VoicemailMailer
from tests.unit import test_mail
from tests.unit.test_mail import TlsSink

# The STARTTLS server and its throwaway certificate, as pytest fixtures of this module.
certificate = test_mail.certificate
tls = test_mail.tls

T0 = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)
WITHOUT_SMTP = """
version: 1
asterisk: {ari_url: "http://127.0.0.1:8088/ari", username: numcfg, password: secret-pw}
employees:
  anna: {name: Anna, extension: "101", endpoint: PJSIP/101, email: anna@example.com}
numbers:
  paris: {number: "+33185000000"}
"""


def config_for(tmp_path: Path, smtp: str, *, email_line: str = "email: anna@example.com") -> Config:
    return load_config_text(
        f"""
version: 1
asterisk: {{ari_url: "http://127.0.0.1:8088/ari", username: numcfg, password: secret-pw}}
account: {{timezone: Europe/Paris, smtp: "{smtp}", mail_from: pbx@example.com}}
storage: {{voicemail: "{tmp_path / "voicemail"}"}}
employees:
  anna: {{name: Anna, extension: "101", endpoint: PJSIP/101, {email_line}}}
  boris: {{name: Boris, extension: "102", endpoint: PJSIP/102}}
numbers:
  paris: {{number: "+33185000000", name: Paris main line}}
"""
    )


def voicemail(tmp_path: Path, call_id: str = "c1", seconds: float = 2.0) -> bytes:
    folder = tmp_path / "voicemail"
    folder.mkdir(exist_ok=True)
    with wave.open(str(folder / f"{call_id}.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(range(256)) * int(seconds * 8000 * 2 / 256))
    return (folder / f"{call_id}.wav").read_bytes()


def details(call_id: str = "c1", **changes: Any) -> CallDetails:
    values: dict[str, Any] = {
        "id": call_id,
        "number": "paris",
        "direction": Direction.INCOMING,
        "caller": "+33612345678",
        "callee": "+33185000000",
        "employee": None,
        "started_at": T0,
        "answered_at": T0,
        "ended_at": T0,
        "duration": 20,
        "disposition": Disposition.VOICEMAIL,
        "route": ("greeting", "queue:sales", "voicemail:anna"),
        "recording": None,
        "recording_skipped": None,
        "rating": None,
        "transcript": None,
        "crm": None,
    }
    return CallDetails(**(values | changes))


@contextlib.asynccontextmanager
async def running(mailer: VoicemailMailer) -> AsyncIterator[VoicemailMailer]:
    task = asyncio.create_task(mailer.run())
    try:
        yield mailer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_voicemail_reaches_the_employee_with_the_audio_attached_over_starttls(
    tls: tuple[TlsSink, int, ssl.SSLContext], tmp_path: Path
) -> None:
    sink, port, client_context = tls
    config = config_for(tmp_path, f"smtp://pbx%40example.com:p%2Fw@127.0.0.1:{port}")
    audio = voicemail(tmp_path)
    mailer = VoicemailMailer(config_source=lambda: config, tls_context=client_context)
    async with running(mailer):
        await mailer.finished(None, details())
        await until(lambda: mailer.sent == 1)
    assert sink.logins == [("pbx@example.com", "p/w")] and sink.tls_used == [True]
    message = email.message_from_bytes(sink.messages[0], policy=email.policy.default)
    assert message["To"] == "anna@example.com"
    assert message["From"] == "pbx@example.com"
    assert message["Subject"] == "Voicemail from +33612345678 (0:02)"
    body = message.get_body(("plain",)).get_content()
    assert "Paris main line (+33185000000)" in body and "2026-11-27 09:30 CET" in body
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "audio/wav"
    assert attachment.get_filename() == "voicemail-c1.wav"
    assert attachment.get_content() == audio


async def test_only_kept_voicemail_of_an_employee_with_an_email_is_sent(
    tls: tuple[TlsSink, int, ssl.SSLContext], tmp_path: Path
) -> None:
    sink, port, client_context = tls
    config = config_for(tmp_path, f"smtp://127.0.0.1:{port}")
    mailer = VoicemailMailer(config_source=lambda: config, tls_context=client_context)
    voicemail(tmp_path, "kept")
    voicemail(tmp_path, "boris")
    voicemail(tmp_path, "number")
    voicemail(tmp_path, "answered")
    skipped = [
        details("boris", route=("voicemail:boris",)),  # no email
        details("number", route=("voicemail:paris",)),  # the number's own mailbox
        details("silent"),  # no file was kept
        details("answered", disposition=Disposition.ANSWERED, route=("employee:anna",)),
    ]
    assert [mailer.note_for(d) for d in skipped] == [None] * 4
    async with running(mailer):
        for d in [*skipped, details("kept")]:
            await mailer.finished(None, d)
        await until(lambda: mailer.sent == 1)
    assert len(sink.messages) == 1 and b"voicemail-kept.wav" in sink.messages[0]


async def test_the_call_never_waits_for_a_server_that_does_not_answer(tmp_path: Path) -> None:
    """A server that accepts the connection and says nothing: the SMTP timeout is 10 s,
    the call's end is not delayed by it at all."""
    silent = await asyncio.start_server(lambda r, w: asyncio.sleep(3600), "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    config = config_for(tmp_path, f"smtp://127.0.0.1:{port}")
    voicemail(tmp_path)
    mailer = VoicemailMailer(config_source=lambda: config, retry_delays=())
    async with running(mailer):
        started = time.monotonic()
        await mailer.finished(None, details())
        assert time.monotonic() - started < 0.05
    silent.close()


async def test_a_server_that_stays_down_is_tried_a_few_times_then_given_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()  # nothing listens there now: connection refused
    config = config_for(tmp_path, f"smtp://127.0.0.1:{port}")
    voicemail(tmp_path)
    mailer = VoicemailMailer(config_source=lambda: config, retry_delays=(0.01, 0.01))
    with caplog.at_level(logging.WARNING, logger="numcfg.voicemail"):
        async with running(mailer):
            await mailer.finished(None, details())
            await until(lambda: mailer.given_up == 1)
            await asyncio.sleep(0.1)  # and nothing more is tried
    attempts = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(attempts) == 2
    (final,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "not emailed to anna@example.com after 3 attempts" in final.getMessage()
    assert mailer.sent == 0
    assert (tmp_path / "voicemail" / "c1.wav").exists()  # the message itself is kept


def test_an_email_without_smtp_or_a_bad_address_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as no_smtp:
        load_config_text(WITHOUT_SMTP)
    assert "employees.anna.email: voicemail email needs account.smtp" in str(no_smtp.value)
    with pytest.raises(ConfigError) as bad:
        config_for(
            tmp_path, "smtp://127.0.0.1:25", email_line='email: "anna@example.com\\nBcc: x@y.z"'
        )
    assert "is not an email address" in str(bad.value)
