"""Sending numcfg's emails through `account.smtp`.

`smtps://host[:465]` speaks TLS from the start; `smtp://host[:25|587]` upgrades with
STARTTLS whenever the server offers it, and refuses to send a password in the clear when
it does not (`?starttls=off` for a local relay that has no TLS and takes no password).
User and password in the URL are percent-decoded (`smtp://me%40example.com:p%2Fw@host`).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

SMTP_TIMEOUT_S: Final = 10.0


class MailError(Exception):
    """The message was not sent; the text says why, for the operator."""


def send_mail(
    smtp_url: str, message: EmailMessage, *, tls_context: ssl.SSLContext | None = None
) -> None:
    url = urlsplit(smtp_url)
    if url.scheme not in ("smtp", "smtps") or not url.hostname:
        raise MailError(f"account.smtp: expected smtp://host:port or smtps://..., not {smtp_url!r}")
    starttls = parse_qs(url.query).get("starttls", ["auto"])[0]
    if starttls not in ("auto", "off"):
        raise MailError(f"account.smtp: starttls must be auto or off, not {starttls!r}")
    user = unquote(url.username) if url.username else None
    password = unquote(url.password) if url.password else ""
    context = tls_context or ssl.create_default_context()
    try:
        if url.scheme == "smtps":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                url.hostname, url.port or 465, timeout=SMTP_TIMEOUT_S, context=context
            )
        else:
            smtp = smtplib.SMTP(url.hostname, url.port or 25, timeout=SMTP_TIMEOUT_S)
        with smtp:
            if url.scheme == "smtp" and starttls == "auto":
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
                elif user:
                    raise MailError(
                        f"{url.hostname} offers no STARTTLS: the password would travel in clear"
                    )
            if user:
                smtp.login(user, password)
            smtp.send_message(message)
    except MailError:
        raise
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        raise MailError(_reason(exc)) from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"no answer from the SMTP server within {SMTP_TIMEOUT_S:g} s"
    return str(exc) or type(exc).__name__
