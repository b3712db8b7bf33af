"""Asterisk crashes with three conversations up and comes back (issue 9, issue 17).

numcfg loses its websocket, reconnects to the new Asterisk, finds that none of its calls'
channels exist any more and ends them: every call keeps its details, no claim is left,
and every employee is rung again afterwards."""

from __future__ import annotations

import asyncio
import time

import pytest

from . import conftest
from .conftest import install_dialplan, rig
from .harness import Employee, Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

EXT = {"anna": "101", "boris": "102", "chloe": "103"}


def team_config() -> dict:
    return {
        "queues": {
            "sales": {
                "members": list(EXT),
                "distribution": "evenly",
                "ring_time": 10,
                "max_wait": 60,
                "fallback": {"action": "hangup"},
            }
        },
        "numbers": {
            "paris": {
                "number": "+33185000000",
                "routing": {"greeting": None, "queue": "sales"},
                "recording": {"record_all": True, "warning": False},
            }
        },
    }


async def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_an_asterisk_crash_ends_every_call_with_its_details_and_frees_everyone(
    harness: Harness, numcfg
) -> None:
    app = await numcfg(team_config())
    for name in EXT:
        await asyncio.to_thread(app.store.people.set_workday, name, "working")
    for ext in EXT.values():
        harness.employees[ext] = Employee("answer", answer_after=0.2)  # talks until the end
    legs = [await harness.call("+33185000000") for _ in EXT]
    for leg in legs:
        await harness.bridged(leg, timeout=30)
    await asyncio.sleep(1.0)  # talking, and recording
    connections = app.stream.connections

    await asyncio.to_thread(rig, "crash")
    await asyncio.to_thread(rig, "up")
    conftest._installed_dialplan.clear()  # the new Asterisk has the default contexts
    install_dialplan(app.config_holder.path)
    await wait_until(
        lambda: app.stream.connections > connections and app.stream.connected,
        30,
        "numcfg to reconnect to the new Asterisk",
    )

    calls = await calls_done(app, timeout=30)
    assert len(calls) == 3
    assert sorted(c["employee"] for c in calls) == sorted(EXT)
    assert {c["disposition"] for c in calls} == {"answered"}
    assert app.services.active == {}
    assert app.metrics.active._value.get() == 0
    assert await app.services.claims.busy() == set()

    # Everyone is rung again: three short calls, one per employee (evenly).
    await wait_until(harness.connected.is_set, 30, "the test harness to reconnect")
    for ext in EXT.values():
        harness.employees[ext] = Employee("answer", answer_after=0.2, hangup_after=0.3)
    for _ in EXT:
        leg = await harness.call("+33185000000")
        await harness.ended(leg, timeout=30)
        await calls_done(app)
    assert sum(e.rung for e in harness.employees.values()) == 3
    latest = (await calls_done(app))[:3]
    assert sorted(c["employee"] for c in latest) == sorted(EXT)
