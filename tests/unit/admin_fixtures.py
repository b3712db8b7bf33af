"""Shared by the test_admin_* modules: a config file on disk and a local SMTP sink."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from pathlib import Path

ENV = {"NUMCFG_ARI_PASSWORD": "ari-pass-123", "NUMCFG_API_TOKEN": "api-token-456"}

CONFIG = """\
version: 1
asterisk:
  ari_url: http://127.0.0.1:8088/ari
  username: numcfg
  password: ${NUMCFG_ARI_PASSWORD}
store: sqlite:///STORE
api:
  token: ${NUMCFG_API_TOKEN}
account:
  timezone: Europe/Paris
  admin_email: admin@example.com
  smtp: SMTP
  external_allowlist: ["+33*"]
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
    members: [anna, boris]
numbers:
  paris:
    number: "+33185000000"
    name: Paris main line
    routing:
      queue: sales
    callback: {attempts: 5, delay: 60}
  lyon:
    number: "+33478000000"
"""


def write_config(folder: Path, smtp: str) -> Path:
    path = folder / "numcfg.yaml"
    text = CONFIG.replace("STORE", str(folder / "numcfg.sqlite3")).replace("SMTP", smtp)
    path.write_text(text)
    return path


class SmtpSink:
    """Just enough SMTP for smtplib.send_message: every message lands in `messages`."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.reply("220 sink ready")
                while line := self.rfile.readline():
                    verb = line.decode().strip().split(" ")[0].upper()
                    if verb == "DATA":
                        self.reply("354 go on")
                        body = b""
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            body += chunk
                        sink.messages.append(message_from_bytes(body))
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:  # EHLO, HELO, MAIL, RCPT, RSET, NOOP
                        self.reply("250 ok")

            def reply(self, text: str) -> None:
                self.wfile.write(text.encode() + b"\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"smtp://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    # A short poll so shutdown() at teardown returns at once rather than after 0.5 s.
    thread = threading.Thread(target=sink.server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        sink.server.shutdown()
        sink.server.server_close()


def closed_port_url() -> str:
    """An smtp:// URL where nothing listens, for the email-failure path."""
    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as server:
        port = server.server_address[1]
    return f"smtp://127.0.0.1:{port}"
