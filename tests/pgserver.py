"""A throwaway PostgreSQL server for tests: temp directory, free port, stopped afterwards.

Uses the newest Debian server binaries under /usr/lib/postgresql/*/bin. PostgreSQL refuses
to run as root, so when the tests run as root every server command runs as the `postgres`
OS user (`runuser -u postgres --`) in a directory that user owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

PG_ROOT: Final = Path("/usr/lib/postgresql")
OS_USER: Final = "postgres"
DATABASE: Final = "numcfg_test"
# initdb plus start take about a second; a loaded CI machine may need far more.
START_TIMEOUT_S: Final = 60
# Another process may grab the free port between our probe and the server's bind.
START_ATTEMPTS: Final = 3


class PostgresUnavailable(RuntimeError):
    """No server binaries here, or no way to run them; tests needing PostgreSQL skip."""


def find_bindir() -> Path:
    """The bin directory of the newest installed major version."""
    candidates = [
        path / "bin"
        for path in PG_ROOT.glob("*")
        if path.name.isdigit() and (path / "bin" / "initdb").exists()
    ]
    if not candidates:
        raise PostgresUnavailable(f"no PostgreSQL server under {PG_ROOT}")
    return max(candidates, key=lambda bindir: int(bindir.parent.name))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user() -> list[str]:
    """Command prefix that runs a server tool as a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("running as root and runuser is missing")
    return ["runuser", "-u", OS_USER, "--"]


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server on 127.0.0.1, create DATABASE, yield its URL, stop and delete it all."""
    bindir = find_bindir()
    prefix = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="numcfg-pg-"))
    try:
        if prefix:
            user = pwd.getpwnam(OS_USER)
            os.chown(root, user.pw_uid, user.pw_gid)
        data = root / "data"
        # trust: only this test run can reach 127.0.0.1:<random port> and the socket dir.
        # --no-sync and fsync=off: durability is worthless for a throwaway server.
        _run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                OS_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ]
        )
        port = _start(bindir, prefix, root, data)
        try:
            _run(
                [
                    *prefix,
                    str(bindir / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    OS_USER,
                    DATABASE,
                ]
            )
            yield f"postgresql://{OS_USER}@127.0.0.1:{port}/{DATABASE}"
        finally:
            _run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


class PostgresServer:
    """A throwaway server that a test may stop and start again on the same port (the
    shared store of several nodes going away and coming back)."""

    def __init__(self) -> None:
        self._bindir = find_bindir()
        self._prefix = _as_server_user()
        self._root = Path(tempfile.mkdtemp(prefix="numcfg-pg-"))
        self._data = self._root / "data"
        self.port = 0

    @property
    def url(self) -> str:
        return f"postgresql://{OS_USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """initdb at the first start; later starts reuse the data and the port."""
        if not self._data.exists():
            if self._prefix:
                user = pwd.getpwnam(OS_USER)
                os.chown(self._root, user.pw_uid, user.pw_gid)
            _run(
                [
                    *self._prefix,
                    str(self._bindir / "initdb"),
                    "-D",
                    str(self._data),
                    "-U",
                    OS_USER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ]
            )
        self.port = _start(self._bindir, self._prefix, self._root, self._data, self.port or None)

    def stop(self) -> None:
        pg_ctl = str(self._bindir / "pg_ctl")
        _run([*self._prefix, pg_ctl, "-D", str(self._data), "-m", "fast", "-w", "stop"])

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self._root, ignore_errors=True)


def _start(bindir: Path, prefix: list[str], root: Path, data: Path, port: int | None = None) -> int:
    """pg_ctl start on `port` or else a free port, retrying if the port was taken meanwhile."""
    error: RuntimeError | None = None
    wanted = port
    for _ in range(START_ATTEMPTS):
        port = wanted or _free_port()
        # The Unix socket goes in our directory: /var/run/postgresql may not exist or be
        # writable, and a private directory cannot collide with another server.
        options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=100"
        try:
            _run(
                [
                    *prefix,
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(root / "server.log"),
                    "-o",
                    options,
                    "-t",
                    str(START_TIMEOUT_S),
                    "-w",
                    "start",
                ]
            )
        except RuntimeError as exc:
            log = root / "server.log"
            error = RuntimeError(f"{exc}\n{log.read_text() if log.exists() else ''}")
            continue
        return port
    assert error is not None
    raise error
