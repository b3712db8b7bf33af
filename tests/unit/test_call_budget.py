"""What one ordinary call costs numcfg in round trips (issue 15): the bench's flow
(greeting, IVR, the caller presses 1 during the menu's prompt, the employee answers and
hangs up) against FakeAri, counting the REST requests the call makes and its thread hops
to the store. These are the costs make bench measured as the biggest: a request or a hop
is a wake-up of another process or thread, expensive on a virtual machine. The counts
are exact, so a change that adds one fails here before it shows in the bench."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

import pytest

from asterisk_bridge.calls.core import journal as journal_module
from asterisk_bridge.logs import current_call
from tests.fakeari.engine import StartEngine

pytest_plugins = ["tests.fakeari.fixtures", "tests.fakeari.engine_fixtures"]

BENCH_FLOW = {
    "ivr_menus": {
        "main": {
            "prompt": "sound:numcfg/en/ivr-invalid",
            "options": {"1": {"action": "employee", "employee": "anna"}},
        }
    },
    "numbers": {
        "paris": {"routing": {"greeting": "sound:numcfg/en/goodbye", "ivr": "main", "queue": None}}
    },
}
# The requests of the call (the stream's own at connect are not the call's).
EXPECTED_REQUESTS = Counter(
    {
        "POST /channels/{id}/answer": 1,
        "POST /channels/{id}/play": 2,  # greeting and menu prompt in one; ringback
        "DELETE /playbacks/{id}": 2,  # the prompt the digit interrupts; the ringback
        "POST /channels": 1,  # the employee's leg, originated in one request
        "POST /bridges/{id}": 1,
        "POST /bridges/{id}/addChannel": 1,  # both parties in one request
        "DELETE /channels/{id}": 1,  # the caller, once the employee hung up
        "DELETE /bridges/{id}": 1,
    }
)
# The employee's phone answers before its ringing would be heard and never said it rang
# (the benchmark's Local employees): no ring tone, so no play and no stop of it.
EXPECTED_REQUESTS_ANSWERED_AT_ONCE = EXPECTED_REQUESTS - Counter(
    {"POST /channels/{id}/play": 1, "DELETE /playbacks/{id}": 1}
)
# Store work a call waits for or queues: the recording quota is not read (no recording),
# the number's state comes from memory after the first call, and the journal's notes
# (open, answered, finished) each take one hop when calls come one at a time.
EXPECTED_CALL_HOPS = 3


def shape(method: str, path: str) -> str:
    """The request with its ids replaced, as listed above."""
    path = re.sub(r"^/ari", "", path)
    path = re.sub(r"/(channels|bridges|playbacks)/[^/]+", r"/\1/{id}", path)
    path = re.sub(r"/play/[^/]+$", "/play", path)
    return f"{method} {path}"


async def one_call(engine: Any) -> None:
    engine.plan_playback("sound:numcfg/en/ivr-invalid", "hold")
    caller = await engine.incoming("paris")
    await engine.wait_for(
        lambda: "sound:numcfg/en/ivr-invalid" in engine.played(caller), what="the menu prompt"
    )
    await engine.press(caller, "1")
    leg = await engine.next_leg()
    await engine.answer_leg(leg)
    await engine.wait_bridged(caller, leg)
    await engine.hangup(leg)
    await engine.wait_for(lambda: not engine.app.services.active, what="the call to end")


@pytest.mark.parametrize(
    ("phone_rings", "expected"),
    [(True, EXPECTED_REQUESTS), (False, EXPECTED_REQUESTS_ANSWERED_AT_ONCE)],
    ids=["phone-rings", "answers-at-once"],
)
async def test_an_ordinary_call_makes_the_requests_and_store_hops_it_needs_and_no_more(
    start_engine_app: StartEngine,
    monkeypatch: pytest.MonkeyPatch,
    phone_rings: bool,
    expected: Counter[str],
) -> None:
    engine = await start_engine_app(BENCH_FLOW)
    engine.working("anna")
    engine.fake.legs_ring = phone_rings
    await one_call(engine)  # the first call reads the number's state from the store
    await engine.calls_done()

    hops: list[str] = []
    real_to_thread = asyncio.to_thread

    async def counting_to_thread(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        # The journal's worker has no call id of its own: its hops are the calls' notes.
        task = asyncio.current_task()
        if current_call.get() is not None or (task is not None and task.get_name() == "journal"):
            hops.append(getattr(fn, "__qualname__", repr(fn)))
        return await real_to_thread(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting_to_thread)
    # The journal's group commit joins notes that come within its window, which depends
    # on timing: counted without it, the count is the worst case and exact.
    monkeypatch.setattr(journal_module, "BATCH_WINDOW_SECONDS", 0.0)
    since = len(engine.fake.requests)
    await one_call(engine)
    calls = await engine.calls_done()
    assert len(calls) == 2 and calls[0]["route"] == ["greeting", "ivr:main:1", "employee:anna"]

    made = Counter(shape(r.method, r.path) for r in engine.fake.requests[since:])
    assert made == expected
    assert len(hops) == EXPECTED_CALL_HOPS, hops
    await engine.assert_idle()
