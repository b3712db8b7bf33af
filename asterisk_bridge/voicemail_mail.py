"""Voicemail emailed to its employee, the message attached (SPEC section 13).

A call observer (registered by app.py): when a call ends with a voicemail kept for an
employee who has `employees.<id>.email`, the message is queued, and a worker sends it
through `account.smtp` (asterisk_bridge/mail.py: STARTTLS, percent-decoded credentials).
Never on the call path: `finished` only queues. A failure is logged and tried again a few
times, then given up (the WAV stays in storage.voicemail either way).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from .calls.core.context import CallObserverBase
from .config.schema import Config
from .mail import MailError, send_mail
from .policy.types import Disposition
from .store import CallDetails

log = logging.getLogger("numcfg.voicemail")

VOICEMAIL_STEP: Final = "voicemail:"
# Waits before the second and third attempts: a relay restarting or a network blip is
# over in minutes; past that it needs a person, and the log says so.
RETRY_DELAYS_SECONDS: Final = (60.0, 600.0)
# Messages waiting to be sent; past this (the SMTP server is down and voicemail keeps
# coming) new ones are logged and skipped rather than held in memory without limit.
MAX_QUEUED: Final = 1000


@dataclass(frozen=True, slots=True)
class VoicemailNote:
    call_id: str
    employee: str
    to: str
    caller: str | None
    number: str | None
    started_at_text: str
    audio: Path


class VoicemailMailer(CallObserverBase):
    def __init__(
        self,
        *,
        config_source: Callable[[], Config],
        retry_delays: Sequence[float] = RETRY_DELAYS_SECONDS,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self._config = config_source
        self._retry_delays = tuple(retry_delays)
        self._tls_context = tls_context
        self._queue: asyncio.Queue[VoicemailNote] = asyncio.Queue(MAX_QUEUED)
        self.sent = 0
        self.given_up = 0

    # -- the call observer -------------------------------------------------------------
    async def finished(self, call: Any, details: CallDetails) -> None:
        note = self.note_for(details)
        if note is None:
            return
        try:
            self._queue.put_nowait(note)
        except asyncio.QueueFull:
            log.warning(
                "call %s: voicemail not emailed: %d already waiting", note.call_id, MAX_QUEUED
            )

    def note_for(self, details: CallDetails) -> VoicemailNote | None:
        """The email this call calls for, if any."""
        if details.disposition is not Disposition.VOICEMAIL:
            return None
        owners = [
            step.removeprefix(VOICEMAIL_STEP)
            for step in details.route
            if step.startswith(VOICEMAIL_STEP)
        ]
        config = self._config()
        employee = config.employees.get(owners[-1]) if owners else None
        if employee is None or not employee.email:
            return None
        audio = Path(config.storage.voicemail) / f"{details.id}.wav"
        if not audio.is_file():
            return None  # the caller said nothing, or the recording failed
        when = details.started_at.astimezone(ZoneInfo(config.account.timezone))
        return VoicemailNote(
            call_id=details.id,
            employee=owners[-1],
            to=employee.email,
            caller=details.caller,
            number=details.number,
            started_at_text=when.strftime("%Y-%m-%d %H:%M %Z"),
            audio=audio,
        )

    # -- the worker ----------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            note = await self._queue.get()
            await self._deliver(note)

    async def _deliver(self, note: VoicemailNote) -> None:
        delays = (*self._retry_delays, None)
        for attempt, delay in enumerate(delays, 1):
            try:
                await asyncio.to_thread(self.send, note)
            except (MailError, OSError) as exc:
                if delay is None:
                    self.given_up += 1
                    log.error(
                        "call %s: voicemail for %s not emailed to %s after %d attempts: %s",
                        note.call_id, note.employee, note.to, attempt, exc,
                    )  # fmt: skip
                    return
                log.warning(
                    "call %s: voicemail email to %s failed (%s); again in %g s",
                    note.call_id, note.to, exc, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
            else:
                self.sent += 1
                log.info("call %s: voicemail emailed to %s", note.call_id, note.to)
                return

    def send(self, note: VoicemailNote) -> None:
        config = self._config()
        if not config.account.smtp:
            raise MailError("account.smtp is not set")
        send_mail(config.account.smtp, build_message(config, note), tls_context=self._tls_context)


def build_message(config: Config, note: VoicemailNote) -> EmailMessage:
    audio = note.audio.read_bytes()
    seconds = _seconds(note.audio)
    caller = note.caller or "an unknown caller"
    number = config.numbers.get(note.number or "")
    line = f"{number.name or note.number} ({number.number})" if number else (note.number or "-")
    message = EmailMessage()
    message["Subject"] = f"Voicemail from {caller} ({seconds // 60}:{seconds % 60:02d})"
    message["From"] = sender(config)
    message["To"] = note.to
    message.set_content(
        f"{caller} left you a voicemail on {line} at {note.started_at_text}, "
        f"{seconds} s long. The recording is attached.\n\n"
        f"Call {note.call_id}: numcfg calls, or GET /api/calls/{note.call_id}\n"
    )
    message.add_attachment(
        audio, maintype="audio", subtype="wav", filename=f"voicemail-{note.call_id}.wav"
    )
    return message


def sender(config: Config) -> str:
    """account.mail_from, else the admin's address, else numcfg at this host."""
    return config.account.mail_from or config.account.admin_email or f"numcfg@{socket.getfqdn()}"


def _seconds(path: Path) -> int:
    try:
        with wave.open(str(path)) as w:
            return round(w.getnframes() / w.getframerate())
    except (wave.Error, EOFError, ZeroDivisionError):
        return 0
