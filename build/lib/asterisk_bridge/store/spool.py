"""Writes the store could not take, kept in a local file until it can.

One JSON object a line (`{"kind": ..., "payload": ...}`), appended and flushed to disk
before the caller moves on, so a numcfg killed while its store is down still has them at
the next start. The file is private (0600): it holds call details.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

FILE_MODE = 0o600
FOLDER_MODE = 0o700


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, kind: str, payload: dict[str, Any]) -> None:
        self.path.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        line = orjson.dumps({"kind": kind, "payload": payload}) + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        """What is waiting, oldest first (a torn last line, from a crash mid-write, is
        skipped: it was never acknowledged)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        entries: list[tuple[str, dict[str, Any]]] = []
        for line in raw.splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            entries.append((str(entry["kind"]), dict(entry["payload"])))
        return entries

    def keep_only(self, entries: list[tuple[str, dict[str, Any]]]) -> None:
        """Replace the file with `entries` (those still not written), atomically."""
        if not entries:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            for kind, payload in entries:
                out.write(orjson.dumps({"kind": kind, "payload": payload}) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)
