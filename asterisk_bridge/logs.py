"""Logging that stays readable on a bad day: a warning that repeats is written once per
window with a count, not once per occurrence (a run of websocket cuts once wrote 74,000
warning lines, burying the few that mattered)."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# The call a log record is about: set by the call's task, inherited by every task it
# starts (asyncio copies the context), so a record carries it without each message
# having to repeat it.
current_call: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "numcfg_call", default=None
)

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


class CallField(logging.Filter):
    """Puts the call id of the running call task on each record (`record.call_id`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "call_id"):
            record.call_id = current_call.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log shippers: time (UTC ISO 8601), level, logger,
    message, the call id as a field when the record is about a call, and the
    exception's text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        call_id = getattr(record, "call_id", None)
        if call_id:
            entry["call_id"] = call_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


# Records the event loop writes within this long of each other go out in one write: a
# call's state changes come in pairs a few ms apart ("started", "greeting"), and on this
# virtual machine a write to the log is ~60 us of CPU, a tenth of a call's numcfg CPU for
# its five records (issue 15). A warning goes out at once, with what waits before it.
BATCH_SECONDS = 0.05


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler whose records from the event loop's thread below WARNING wait up
    to BATCH_SECONDS for others, then go out together; anything else is written at once,
    after the waiting ones (order kept). flush() (at exit too) writes what waits."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._waiting: list[str] = []
        self._flush_at: asyncio.TimerHandle | None = None
        self._flush_loop: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        loop = _running_loop()
        if loop is None or record.levelno >= logging.WARNING:
            self._waiting.append(line)
            self.flush()
            return
        self._waiting.append(line)
        if self._flush_at is None or self._flush_loop is not loop:
            # (A timer of a loop since closed would never fire.)
            self._flush_at = loop.call_later(BATCH_SECONDS, self.flush)
            self._flush_loop = loop

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            # Only the loop's own thread may cancel its timer (uvloop's are not
            # thread-safe); from another thread it fires later and finds nothing to write.
            if self._flush_at is not None and _running_loop() is self._flush_loop:
                self._flush_at.cancel()
                self._flush_at = None
                self._flush_loop = None
            if self._waiting:
                text = "".join(self._waiting)
                self._waiting.clear()
                try:
                    self.stream.write(text)
                except Exception:  # as StreamHandler: a broken stream never stops numcfg
                    return
            super().flush()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def configure(*, verbose: bool, json_lines: bool = False) -> None:
    """The service's logging: one line per record (text, or JSON on request), repeats
    collapsed."""
    # No record field numcfg writes needs the caller's frame, thread or process: leaving
    # them out spares a stack walk and three lookups per record (the logging HOWTO's
    # "Optimization").
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BatchedStreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(LOG_FORMAT))
    handler.addFilter(CallField())
    handler.addFilter(RepeatCollapser())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
