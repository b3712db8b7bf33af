"""Recorded ARI traffic as test input, like panoramisk's captured AMI exchanges.

An event log is JSON lines: one ARI event object per line, as Asterisk sent it on the
websocket (blank lines are skipped). Feed it to `FakeAri.replay` to push it through the
real client, or to `parse_event` directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

LOGS = Path(__file__).parent / "logs"


def load_event_log(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines event log; a bad line fails with its number, not a bare
    decode error, so a hand-edited fixture is quick to fix."""
    events: list[dict[str, Any]] = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc
        if not isinstance(data, dict) or "type" not in data:
            raise ValueError(f"{path}:{number}: not an ARI event (no 'type')")
        events.append(data)
    return events
