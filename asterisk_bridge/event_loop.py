"""The event loop `numcfg run` runs on: uvloop's where it is installed, else asyncio's.

uvloop does the same work with less CPU per ARI event and request (bench/README.md has
the figures); NUMCFG_EVENT_LOOP=asyncio keeps asyncio's own loop, to compare or to rule
the loop out when looking for a problem."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

try:
    import uvloop
except ImportError:  # an install without it (a platform with no wheel) runs on asyncio's
    uvloop = None

T = TypeVar("T")
ENV = "NUMCFG_EVENT_LOOP"


def loop_name() -> str:
    """The loop `run_event_loop` will use: "uvloop" or "asyncio"."""
    wanted = os.environ.get(ENV, "uvloop").strip().lower()
    return "uvloop" if wanted == "uvloop" and uvloop is not None else "asyncio"


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    if loop_name() == "uvloop":
        return uvloop.run(main)
    return asyncio.run(main)
