"""Logging that stays readable on a bad day: a warning that repeats is written once per
window with a count, not once per occurrence (a run of websocket cuts once wrote 74,000
warning lines, burying the few that mattered)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

# A fault that repeats (Asterisk down, a CRM timing out) is still visible every window,
# and a burst costs one line per window instead of one per event.
REPEAT_WINDOW_SECONDS = 30.0
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RepeatCollapser(logging.Filter):
    """Lets the first WARNING-or-worse record of each (logger, level, message) through per
    window; the next one after the window carries "(N more like this)". The message is
    the formatted one: the same warning about two different calls is two warnings.
    Records below WARNING pass untouched."""

    def __init__(
        self,
        *,
        window: float = REPEAT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._window = window
        self._clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, record.getMessage())
        now = self._clock()
        first, suppressed = self._seen.get(key, (0.0, -1))
        if suppressed >= 0 and now - first < self._window:
            self._seen[key] = (first, suppressed + 1)
            return False
        self._seen[key] = (now, 0)
        if suppressed > 0:
            record.msg = f"{record.getMessage()} ({suppressed} more like this before)"
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log shippers: time (UTC ISO 8601), level, logger,
    message, and the exception's text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(*, verbose: bool, json_lines: bool = False) -> None:
    """The service's logging: one line per record (text, or JSON on request), repeats
    collapsed."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(LOG_FORMAT))
    handler.addFilter(RepeatCollapser())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
