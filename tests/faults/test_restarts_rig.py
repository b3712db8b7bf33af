"""numcfg killed and Asterisk crashed with calls up in every state (issues 9 and 17).

Seven calls are up when the fault comes: three recorded conversations (one per employee),
a caller waiting in the queue behind them, a caller whose employee is ringing, a caller in
an IVR menu and one hearing a greeting.

- `numcfg run` is killed with SIGKILL and started again: the new process finds the calls
  left in Stasis, hangs them up and closes their details (route ends with `interrupted`).
- Asterisk is killed (no clean shutdown) and started again: numcfg reconnects to the new
  Asterisk, finds none of its channels and ends every call with its details.

Afterwards issue 17's checks: every call with its details, 0 channels, 0 bridges, 0
recordings left in Asterisk's spool, no claim, and every employee rung again (the finding
was "two of three employees were never rung again")."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from asterisk_bridge.store import open_store
from tests.integration import conftest as integration
from tests.integration.conftest import install_dialplan, rig, start_service, write_config
from tests.integration.harness import CallerLeg, Employee, Harness

from .checks import assert_after_faults, assert_after_service, with_check
from .figures import FIGURES

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

TALKERS = {"anna": "101", "boris": "102", "chloe": "103"}
EVERYONE = {**TALKERS, "dora": "104"}
PARIS = "+33185000000"
RING = "+33185000034"
IVR = "+33185000032"
GREET = "+33185000031"
WELCOME = "sound:numcfg/en/welcome"
MENU = "sound:numcfg/en/ivr-main"
CALLS = 7


def restart_config() -> dict:
    def queue(members: list[str]) -> dict[str, object]:
        return {
            "members": members,
            "distribution": "evenly",
            "ring_time": 30,
            "max_wait": 120,
            "fallback": {"action": "hangup"},
        }

    return {
        "employees": {
            "dora": {
                "name": "Dora Blanc",
                "extension": "104",
                "endpoint": "Local/104@numcfg-test-employees",
            }
        },
        "queues": {"sales": queue(list(TALKERS)), "ringq": queue(["dora"])},
        "ivr_menus": {
            "slow": {
                "prompt": MENU,
                "first_digit_timeout": 60,
                "retries": 1,
                "options": {"1": {"action": "queue", "queue": "sales"}},
                "on_failure": {"action": "hangup"},
            }
        },
        "numbers": {
            "paris": {
                "number": PARIS,
                "routing": {"greeting": None, "queue": "sales"},
                "recording": {"record_all": True, "warning": False},
            },
            "greet": {"number": GREET, "routing": {"greeting": WELCOME}},
            "ivr": {"number": IVR, "routing": {"ivr": "slow"}},
            "ring": {"number": RING, "routing": {"queue": "ringq"}},
        },
    }


def employees(harness: Harness) -> None:
    for ext in TALKERS.values():
        harness.employees[ext] = Employee("answer", answer_after=0.2)  # talks until the end
    harness.employees[EVERYONE["dora"]] = Employee("ignore")  # rings until the fault


async def calls_in_every_state(harness: Harness) -> list[CallerLeg]:
    talkers = [await harness.call(PARIS, caller=f"+3361234500{i}") for i in range(3)]
    for leg in talkers:
        await harness.bridged(leg, timeout=30)
    waiting = await harness.call(PARIS, caller="+33612345010")  # everyone is talking
    await harness.wait_for(
        lambda e: e.get("type") == "StasisStart" and e["channel"]["id"] == waiting.caller_id,
        what="the waiting caller to be answered",
    )
    ringing = await harness.call(RING, caller="+33612345020")
    await harness.employee_rung(EVERYONE["dora"])
    menu = await harness.call(IVR, caller="+33612345030")
    await harness.heard(menu, MENU)
    greeting = await harness.call(GREET, caller="+33612345040")
    await harness.heard(greeting, WELCOME)
    legs = [*talkers, waiting, ringing, menu, greeting]
    assert len(legs) == CALLS
    return legs


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_sigkill_with_calls_up_in_every_state_and_a_restart_loses_no_call(
    harness: Harness, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    test = request.node.name
    harness.reset()
    config = write_config(tmp_path, with_check(restart_config()))
    os.chmod(config, 0o600)
    install_dialplan(config)
    store = open_store(f"sqlite:///{tmp_path}/numcfg.sqlite3")
    for name in EVERYONE:
        store.people.set_workday(name, "working")
    employees(harness)
    log = tmp_path / "numcfg.log"
    proc = await start_service(config, stderr=log)
    try:
        legs = await calls_in_every_state(harness)
        await asyncio.sleep(0.5)
        proc.kill()
        await proc.wait()
        FIGURES.fault(test)
        await asyncio.sleep(1.0)  # the callers wait with nobody in charge
        proc = await start_service(config, stderr=log)
        for leg in legs:  # the calls left in Stasis are hung up by the new process
            await harness.ended(leg, timeout=30)
        calls = await assert_after_service(store, harness, EVERYONE, test=test, placed=CALLS)
        assert all(c["route"][-1] == "interrupted" for c in calls), [c["route"] for c in calls]
        answered = [c for c in calls if c["disposition"] == "answered"]
        assert sorted(c["employee"] for c in answered) == sorted(TALKERS)
        # What the killed run was recording is kept (privately) and named in the details.
        for call in answered:
            kept = store.calls.get(call["id"])
            assert kept is not None and kept.recording, call
            assert kept.recording["seconds"] > 0, kept.recording
            file = tmp_path / "recordings" / kept.recording["file"]
            assert file.stat().st_mode & 0o777 == 0o600, oct(file.stat().st_mode)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 20)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        store.close()


async def test_an_asterisk_crash_with_calls_up_in_every_state_loses_no_call(
    harness: Harness, numcfg, request: pytest.FixtureRequest
) -> None:
    test = request.node.name
    app = await numcfg(restart_config())
    for name in EVERYONE:
        await asyncio.to_thread(app.store.people.set_workday, name, "working")
    employees(harness)
    legs = await calls_in_every_state(harness)
    await asyncio.sleep(1.0)  # talking, and recording
    connections = app.stream.connections

    await asyncio.to_thread(rig, "crash")
    FIGURES.fault(test)
    await asyncio.to_thread(rig, "up")
    integration._installed_dialplan.clear()  # the new Asterisk has the default contexts
    await asyncio.to_thread(install_dialplan, app.config_holder.path)
    await wait_until(
        lambda: app.stream.connections > connections and app.stream.connected,
        30,
        "numcfg to reconnect to the new Asterisk",
    )
    await wait_until(harness.connected.is_set, 30, "the test harness to reconnect")
    assert len(legs) == CALLS

    calls = await assert_after_faults(app, harness, test=test, placed=CALLS)
    answered = [c for c in calls if c["disposition"] == "answered"]
    assert sorted(c["employee"] for c in answered) == sorted(TALKERS)
