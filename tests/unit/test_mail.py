"""numcfg's mail (issue 14): STARTTLS when the server offers it, never a password in
clear, credentials percent-decoded. Against a local SMTP server that speaks STARTTLS with
a throwaway self-signed certificate."""

from __future__ import annotations

import base64
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest

from asterisk_bridge.mail import MailError, send_mail


@dataclass
class TlsSink:
    """EHLO / STARTTLS / AUTH PLAIN / MAIL / RCPT / DATA, recording what it saw."""

    context: ssl.SSLContext
    offer_starttls: bool = True
    seen: list[str] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    tls_used: list[bool] = field(default_factory=list)

    def handler(self) -> type[socketserver.StreamRequestHandler]:
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                tls = False
                self.reply("220 sink")
                while line := self.rfile.readline():
                    text = line.decode().strip()
                    verb = text.split(" ")[0].upper()
                    sink.seen.append(verb)
                    if verb == "EHLO":
                        extensions = ["AUTH PLAIN"]
                        if sink.offer_starttls and not tls:
                            extensions.append("STARTTLS")
                        lines = ["sink", *extensions]
                        for i, ext in enumerate(lines):
                            sep = " " if i == len(lines) - 1 else "-"
                            self.reply(f"250{sep}{ext}")
                    elif verb == "STARTTLS":
                        self.reply("220 go ahead")
                        self.connection = sink.context.wrap_socket(
                            self.connection, server_side=True
                        )
                        self.rfile = self.connection.makefile("rb")
                        self.wfile = self.connection.makefile("wb", buffering=0)
                        tls = True
                    elif verb == "AUTH":
                        raw = base64.b64decode(text.split(" ")[2]).split(b"\0")
                        sink.logins.append((raw[1].decode(), raw[2].decode()))
                        self.reply("235 ok")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        body = b""
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            body += chunk
                        sink.messages.append(body)
                        sink.tls_used.append(tls)
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("250 ok")

            def reply(self, text: str) -> None:
                self.wfile.write(text.encode() + b"\r\n")

        return Handler


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


def serve(sink: TlsSink) -> tuple[socketserver.ThreadingTCPServer, int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), sink.handler())
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    return server, server.server_address[1]


@pytest.fixture
def tls(certificate: tuple[Path, Path]) -> Iterator[tuple[TlsSink, int, ssl.SSLContext]]:
    key, cert = certificate
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    client_context.check_hostname = False
    sink = TlsSink(context=server_context)
    server, port = serve(sink)
    try:
        yield sink, port, client_context
    finally:
        server.shutdown()
        server.server_close()


def message() -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = mail["To"] = "admin@example.com"
    mail["Subject"] = "test"
    mail.set_content("hello")
    return mail


def test_starttls_is_used_when_offered_and_credentials_are_decoded(
    tls: tuple[TlsSink, int, ssl.SSLContext],
) -> None:
    sink, port, context = tls
    url = f"smtp://me%40example.com:p%2Fss%3Aword@127.0.0.1:{port}"
    send_mail(url, message(), tls_context=context)
    assert sink.seen.index("STARTTLS") < sink.seen.index("AUTH")
    assert sink.logins == [("me@example.com", "p/ss:word")]
    assert sink.tls_used == [True]


def test_a_password_is_never_sent_in_clear(tls: tuple[TlsSink, int, ssl.SSLContext]) -> None:
    sink, port, context = tls
    sink.offer_starttls = False
    with pytest.raises(MailError, match="in clear"):
        send_mail(f"smtp://me:secret@127.0.0.1:{port}", message(), tls_context=context)
    assert sink.logins == [] and sink.messages == []


def test_a_local_relay_without_tls_or_password_still_works(
    tls: tuple[TlsSink, int, ssl.SSLContext],
) -> None:
    sink, port, context = tls
    sink.offer_starttls = False
    send_mail(f"smtp://127.0.0.1:{port}?starttls=off", message(), tls_context=context)
    assert sink.tls_used == [False] and "STARTTLS" not in sink.seen


def test_a_bad_url_says_what_is_expected() -> None:
    with pytest.raises(MailError, match="expected smtp://host:port"):
        send_mail("mailto:x@example.com", message())
