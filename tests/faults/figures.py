"""The fault suite's figures (issue 17): faults injected, calls placed, calls lost,
leftovers, and the longest event-loop stall seen while numcfg ran in-process.

Tests add to FIGURES; conftest.py prints one line at the end of the session and writes
tests/faults/figures.json."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

FIGURES_FILE = Path(__file__).with_name("figures.json")
# The ticker's period: a gap longer than this between two ticks is a stall.
TICK_SECONDS = 0.01


@dataclass
class Figures:
    faults: int = 0
    calls_placed: int = 0
    calls_saved: int = 0
    leftovers: int = 0
    longest_stall_ms: float = 0.0
    # Where the event loop's thread was during the longest stall (a watchdog's sample).
    longest_stall_where: list[str] = field(default_factory=list)
    # The longest garbage collection of the test process while measured (the harness
    # keeps every ARI event of a test: a full collection walks them all, GIL held).
    longest_gc_ms: float = 0.0
    # Calls of tests that knowingly do not check details (an xfail bug documents why).
    calls_unchecked: int = 0
    tests: int = 0
    # Per test: what it injected and placed (for figures.json, not the summary line).
    per_test: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def calls_lost(self) -> int:
        return self.calls_placed - self.calls_saved

    def fault(self, test: str, count: int = 1) -> None:
        self.faults += count
        self._entry(test)["faults"] += count

    def calls(self, test: str, *, placed: int, saved: int) -> None:
        self.calls_placed += placed
        self.calls_saved += saved
        entry = self._entry(test)
        entry["placed"] += placed
        entry["saved"] += saved

    def unchecked(self, test: str, placed: int) -> None:
        self.calls_unchecked += placed
        self._entry(test)["unchecked"] += placed

    def leftover(self, test: str, count: int) -> None:
        self.leftovers += count
        self._entry(test)["leftovers"] += count

    def stall(self, test: str, seconds: float, where: list[str], gc_seconds: float) -> None:
        self.longest_gc_ms = max(self.longest_gc_ms, round(gc_seconds * 1000, 1))
        self._entry(test)["gc_ms"] = round(gc_seconds * 1000, 1)
        ms = round(seconds * 1000, 1)
        if ms > self.longest_stall_ms:
            self.longest_stall_ms = ms
            self.longest_stall_where = where
        entry = self._entry(test)
        entry["stall_ms"] = max(entry["stall_ms"], ms)

    def _entry(self, test: str) -> dict[str, float]:
        return self.per_test.setdefault(
            test,
            {
                "faults": 0,
                "placed": 0,
                "saved": 0,
                "unchecked": 0,
                "leftovers": 0,
                "stall_ms": 0.0,
                "gc_ms": 0.0,
            },
        )

    def line(self) -> str:
        return (
            f"faults: {self.faults} injected, {self.calls_placed} calls placed, "
            f"{self.calls_lost} lost, {self.leftovers} leftovers, "
            f"longest loop stall {self.longest_stall_ms:.0f} ms"
        )

    def write(self, path: Path = FIGURES_FILE) -> None:
        data = asdict(self)
        data["calls_lost"] = self.calls_lost
        data["summary"] = self.line()
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


FIGURES = Figures()


class LoopTicker:
    """An `asyncio.sleep(TICK_SECONDS)` loop on the test's event loop, the one numcfg runs
    on in-process: the longest gap past the period is the longest stall of that loop.
    Only measured while `measuring` is set (numcfg up and taking calls), so the test's own
    blocking set-up (installing the dialplan with a subprocess) does not count. A watchdog
    thread samples the loop thread's stack while a tick is late, to say where it was."""

    WATCH_AFTER = 0.03  # a tick this late is sampled

    def __init__(self) -> None:
        self.longest = 0.0
        self.where: list[str] = []
        self.measuring = False
        self._task: asyncio.Task[None] | None = None
        self._last = time.monotonic()
        self._sample: list[str] = []
        self._stop = threading.Event()
        self._thread_id = threading.get_ident()
        self.longest_gc = 0.0
        self._gc_started = 0.0

    def _on_gc(self, phase: str, _info: dict) -> None:
        if phase == "start":
            self._gc_started = time.monotonic()
        elif self.measuring:
            self.longest_gc = max(self.longest_gc, time.monotonic() - self._gc_started)

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._thread_id = threading.get_ident()
        self._last = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._tick())
        self._stop.clear()
        threading.Thread(target=self._watch, name="loop-watchdog", daemon=True).start()

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def take(self) -> tuple[float, list[str], float]:
        """The longest stall since the last take(), where the loop was then (empty: the
        watchdog could not run either, e.g. a garbage collection held the GIL), and the
        longest garbage collection."""
        longest, self.longest = self.longest, 0.0
        where, self.where = self.where, []
        collected, self.longest_gc = self.longest_gc, 0.0
        return longest, where, collected

    async def _tick(self) -> None:
        while True:
            self._sample = []
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            gap = now - self._last - TICK_SECONDS
            if self.measuring and gap > self.longest:
                self.longest = gap
                self.where = self._sample
            self._last = now

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            late = time.monotonic() - self._last - TICK_SECONDS
            if late > self.WATCH_AFTER and self.measuring and not self._sample:
                frame = sys._current_frames().get(self._thread_id)
                if frame is not None:
                    stack = traceback.extract_stack(frame)
                    self._sample = [
                        f"{'/'.join(f.filename.split('/')[-2:])}:{f.lineno} {f.name}"
                        for f in stack[-8:]
                    ]


TICKER = LoopTicker()
