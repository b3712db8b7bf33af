"""The call engine's hard endings, the real App against the fake ARI (tests/fakeari).

Each test plays Asterisk's part through `Engine` (tests/fakeari/engine.py) and checks
what an operator would see: the REST requests numcfg sent, the saved call record, and
that nothing of a call outlives it (no task in `services.active`, the active-calls gauge
at 0, no employee claimed). These are the endings the integration suite can only reach
slowly on the shared Asterisk, or not deterministically at all (a hangup lost exactly in
a websocket gap, two answers in the same instant, a playback Asterisk silently drops).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asterisk_bridge.ari import media as media_module
from tests.fakeari import Reply, Request
from tests.fakeari.engine import Engine, StartEngine

# fake_ari; start_engine_app, engine
pytest_plugins = ["tests.fakeari.fixtures", "tests.fakeari.engine_fixtures"]

RATING = "sound:numcfg/en/rating"
IVR_MAIN = "sound:numcfg/en/ivr-main"
IVR_INVALID = "sound:numcfg/en/ivr-invalid"
CLIENT = "+33612345678"


async def conversation(engine: Engine) -> tuple[str, str, str]:
    """A client calls the queue and Anna answers: (caller, leg, bridge) once bridged."""
    engine.working("anna")
    caller = await engine.incoming()
    leg = await engine.next_leg()
    await engine.answer_leg(leg)
    bridge = await engine.wait_bridged(caller, leg)
    return caller, leg, bridge


def hangups(engine: Engine, channel_id: str, *, since: int = 0) -> int:
    return len(engine.requests("DELETE", rf"/channels/{channel_id}", since=since))


# -- 1. a websocket gap with both channels up ------------------------------------------------


async def test_websocket_gap_with_channels_up_lets_the_conversation_go_on(engine: Engine) -> None:
    """After a reconnect the inbox re-checks what the call owns; everything is still up,
    so nothing may be hung up and the conversation ends only when someone hangs up."""
    caller, leg, bridge = await conversation(engine)

    since = await engine.cut()
    # The re-check (StreamResumed) asks about every owned resource: let it finish.
    for path in (rf"/channels/{caller}", rf"/channels/{leg}", rf"/bridges/{bridge}"):
        await engine.wait_request("GET", path, since=since)
    await asyncio.sleep(0.2)  # a wrong reaction to the gap would show by now

    assert hangups(engine, caller, since=since) == 0
    assert hangups(engine, leg, since=since) == 0
    assert not engine.requests("DELETE", r"/bridges/.*", since=since)
    assert engine.app.services.active, "the call ended during the gap"
    assert set(engine.fake.bridges[bridge]["channels"]) == {caller, leg}

    await engine.hangup(caller)
    (call,) = await engine.calls_done()
    assert call["disposition"] == "answered"
    assert call["route"] == ["queue:sales", "employee:anna"]
    assert call["employee"] == "anna"
    assert hangups(engine, leg) == 1, "the employee's leg outlived the caller"
    await engine.assert_idle()


async def test_a_cut_with_the_bridging_request_on_the_websocket_still_connects_the_call(
    engine: Engine,
) -> None:
    """The websocket closes while numcfg's addChannel is on it, unanswered (seen in the
    benchmark when Asterisk dropped a slow reader): the request goes again over HTTP and
    the caller talks to the employee, instead of the call failing."""
    release = asyncio.Event()
    transports: list[str] = []

    async def add_channel(req: Request, m: dict[str, str]) -> Reply:
        transports.append(req.transport)
        if req.transport == "ws":
            await release.wait()  # its answer is lost with the socket
            return Reply(204)
        return engine.fake._bridge_members(req, m)

    engine.fake.respond("POST", "/bridges/{bid}/addChannel", handler=add_channel)
    engine.working("anna")
    caller = await engine.incoming()
    leg = await engine.next_leg()
    await engine.answer_leg(leg)
    await engine.fake.wait_request("POST", r"/bridges/[^/]+/addChannel", transport="ws")
    await engine.cut()
    await engine.wait_bridged(caller, leg)
    release.set()
    assert transports == ["ws", "http"]

    await engine.hangup(leg)
    (call,) = await engine.calls_done()
    assert call["disposition"] == "answered"
    assert call["route"] == ["queue:sales", "employee:anna"]
    await engine.assert_idle()


# -- 2. the caller's hangup lost in the gap ---------------------------------------------------


async def test_caller_hangup_lost_in_a_gap_ends_the_conversation(engine: Engine) -> None:
    """Asterisk drops the events of a gap: the caller's hangup is never sent. The re-check
    (GET 404 -> synthesised ChannelDestroyed) must end the conversation: the employee's
    leg hung up, the bridge destroyed, the claim released, the record saved."""
    caller, leg, bridge = await conversation(engine)

    since = await engine.cut(during_gap=lambda: engine.vanish(caller))

    await engine.wait_request("DELETE", rf"/channels/{leg}", since=since)
    await engine.wait_request("DELETE", rf"/bridges/{bridge}", since=since)
    (call,) = await engine.calls_done()
    assert call["disposition"] == "answered"
    assert call["route"] == ["queue:sales", "employee:anna"]
    assert leg not in engine.fake.channels
    assert bridge not in engine.fake.bridges
    await engine.assert_idle()


# -- 3. RecordingFailed during a conversation --------------------------------------------


async def test_recording_failed_mid_conversation_does_not_delay_the_end(
    start_engine_app: StartEngine,
) -> None:
    """A recording that fails while both talk must not make the end of the call wait for
    a RecordingFinished that will never come (RECORDING_STOP_SECONDS is 10 s)."""
    engine = await start_engine_app({"numbers": {"paris": {"recording": {"record_all": True}}}})
    caller, leg, bridge = await conversation(engine)
    record = await engine.wait_request("POST", rf"/bridges/{bridge}/record")
    name = record.params["name"]

    sent = await engine.fake.send_event(
        {
            "type": "RecordingFailed",
            "recording": {
                "name": name,
                "format": "wav",
                "target_uri": f"bridge:{bridge}",
                "state": "failed",
                "cause": "disk full",
            },
        }
    )
    assert sent
    await asyncio.sleep(0.1)
    assert engine.app.services.active, "a failed recording ended the conversation"
    assert hangups(engine, caller) == 0

    started = time.monotonic()
    await engine.hangup(leg)
    (call,) = await engine.calls_done(timeout=5.0)
    elapsed = time.monotonic() - started

    assert elapsed < 2.0, f"the call took {elapsed:.1f}s to end after the employee hung up"
    assert call["disposition"] == "answered"
    assert call["recording"] is None
    assert call["route"] == ["warning", "queue:sales", "employee:anna"]
    assert hangups(engine, caller) == 1
    await engine.assert_idle()


# -- 4. a waiting queue caller lost in a gap --------------------------------------------


@pytest.mark.parametrize("members", ["absent", "refusing"])
async def test_queue_caller_lost_in_a_gap_is_abandoned_without_ringing_in_a_loop(
    engine: Engine, members: str
) -> None:
    """A caller waiting because nobody is free (the member is absent, or her phone
    refuses every ring at once) hangs up during a gap: the call must end as abandoned
    after the reconnect, and the member's phone must not be rung in a tight loop."""
    if members == "refusing":
        engine.working("anna")
        engine.fake.respond("POST", "/channels", 500, {"message": "Allocation failed"})
    caller = await engine.incoming()
    await engine.wait_request("POST", rf"/channels/{caller}/moh")
    await asyncio.sleep(0.5)  # a couple of RECHECK_SECONDS (0.2) of waiting

    await engine.cut(during_gap=lambda: engine.vanish(caller))
    (call,) = await engine.calls_done()
    rung = len(engine.requests("POST", r"/channels"))
    await asyncio.sleep(0.3)

    assert call["disposition"] == "abandoned"
    assert call["route"] == ["queue:sales"]
    # One ring per re-check at most (about 0.7 s / 0.2 s), never a tight loop.
    assert rung <= (6 if members == "refusing" else 0)
    assert len(engine.requests("POST", r"/channels")) == rung, "rung after the call ended"
    await engine.assert_idle()


# -- 5. all_at_once: two answers at the same instant -----------------------------------


ALL_AT_ONCE = {"queues": {"sales": {"members": ["anna", "boris"], "distribution": "all_at_once"}}}


async def test_all_at_once_double_answer_makes_one_conversation(
    start_engine_app: StartEngine,
) -> None:
    """Both members answer back to back: the first wins, the second is hung up, and
    there is exactly one conversation (one bridge, one record)."""
    engine = await start_engine_app(ALL_AT_ONCE)
    engine.working("anna", "boris")
    caller = await engine.incoming()
    first = await engine.next_originate()
    second = await engine.next_originate()
    assert {first.params["endpoint"], second.params["endpoint"]} == {"PJSIP/101", "PJSIP/102"}
    winner, loser = first.params["channelId"], second.params["channelId"]

    await engine.answer_leg(winner)
    await engine.answer_leg(loser)

    bridge = await engine.wait_bridged(caller, winner)
    await engine.wait_request("DELETE", rf"/channels/{loser}")
    assert loser not in engine.fake.bridges[bridge]["channels"]
    await engine.hangup(winner)

    calls = await engine.calls_done()
    assert len(calls) == 1, calls
    (call,) = calls
    expected = "anna" if first.params["endpoint"] == "PJSIP/101" else "boris"
    assert call["employee"] == expected
    assert call["route"] == ["queue:sales", f"employee:{expected}"]
    assert call["disposition"] == "answered"
    assert len(engine.requests("POST", r"/bridges/[^/]+")) == 1
    assert loser not in engine.fake.channels
    await engine.assert_idle()


async def test_leg_answering_after_its_call_dropped_it_is_hung_up_without_a_record(
    start_engine_app: StartEngine,
) -> None:
    """The loser's StasisStart crosses the engine's hangup of it: it reaches the
    dispatcher, which must hang it up as a stray leg, not start a call of its own."""
    engine = await start_engine_app(ALL_AT_ONCE)
    engine.working("anna", "boris")
    caller = await engine.incoming()
    winner = await engine.next_leg()
    loser = await engine.next_leg()
    await engine.answer_leg(winner)
    await engine.wait_bridged(caller, winner)
    await engine.wait_request("DELETE", rf"/channels/{loser}")

    since = len(engine.fake.requests)
    await engine.answer_leg(loser)  # late: the call already forgot this leg
    await engine.wait_request("DELETE", rf"/channels/{loser}", since=since)
    await engine.hangup(winner)

    calls = await engine.calls_done()
    assert len(calls) == 1, calls
    assert calls[0]["disposition"] == "answered"
    assert loser not in engine.fake.channels
    await engine.assert_idle()


# -- 6. draining during a callback attempt ---------------------------------------------------


CALLBACKS = {"numbers": {"paris": {"callback": {"attempts": 2, "delay": 60}}}}


def add_jobs(engine: Engine, count: int) -> list[str]:
    """`count` due callback jobs, the first the most overdue (so it is claimed first)."""
    now = datetime.now(UTC)
    return [
        engine.app.store.callbacks.add(
            number="paris",
            phone=CLIENT,
            attempts=2,
            delay=60,
            due_at=now - timedelta(minutes=count - i),
            reason="missed",
        ).id
        for i in range(count)
    ]


def job_status(engine: Engine) -> dict[str, dict[str, Any]]:
    return {job.id: job.to_json() for job in engine.app.store.callbacks.jobs()}


async def test_drain_during_a_callback_attempt_returns_when_it_ends(
    start_engine_app: StartEngine,
) -> None:
    """SIGTERM while a callback rings the employee: the drain waits for that attempt
    (a call like any other), returns as soon as it ends, not after DRAIN_TIMEOUT, and the
    worker takes no further job once the drain began."""
    engine = await start_engine_app(CALLBACKS)
    engine.working("anna")
    first, second = add_jobs(engine, 2)

    create = await engine.wait_request("POST", r"/channels/create")

    leg = create.params["channelId"]
    await engine.enter_stasis(leg, ("callback",), state="Down")
    await engine.wait_request("POST", rf"/channels/{leg}/dial")

    drain = asyncio.create_task(engine.app.drain(timeout=600))
    await asyncio.sleep(0.2)
    assert not drain.done(), "the drain did not wait for the callback attempt"

    started = time.monotonic()
    await engine.hangup(leg, cause=19)  # the employee did not answer
    async with asyncio.timeout(3.0):
        await drain
    assert time.monotonic() - started < 2.0

    await asyncio.sleep(0.3)  # several CALLBACK_SCAN_SECONDS (0.05)
    assert len(engine.requests("POST", r"/channels/create")) == 1
    jobs = job_status(engine)
    assert jobs[first]["attempts_made"] == 1
    assert jobs[second]["attempts_made"] == 0
    assert jobs[second]["status"] == "pending" and jobs[second]["node"] is None
    (call,) = await engine.calls_done()
    assert call["direction"] == "callback"
    assert call["disposition"] == "missed"
    await engine.assert_idle()


async def test_job_claimed_as_the_drain_starts_is_not_run_after_the_drain(
    start_engine_app: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drain can begin while the worker's claim query is in flight (it runs in a
    thread). Whatever the worker then does with the job, no callback attempt may start
    once `drain()` has returned: the process is about to stop and would cut it off."""
    engine = await start_engine_app(CALLBACKS)
    engine.working("anna")
    callbacks = engine.app.store.callbacks
    claim: Callable[..., Any] = callbacks.claim_due
    entered, release = threading.Event(), threading.Event()

    def slow_claim(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        # Long enough for any machine: the claim must still be in flight when the drain
        # begins (a short one, expiring first on a loaded CI machine, let the attempt
        # start before the drain and failed the test for the wrong reason).
        release.wait(60)
        return claim(*args, **kwargs)

    monkeypatch.setattr(callbacks, "claim_due", slow_claim)
    # The worker claims only a job it has read is due: add one and wake the worker, which
    # then enters the slowed claim (no claim_due runs before: nothing was due).
    add_jobs(engine, 1)
    engine.app.services.runtime.callbacks_queued.set()
    # Polled on the loop, not waited in a thread: the default executor may be busy with
    # the app's other workers' store calls.
    for _ in range(1000):
        if entered.is_set():
            break
        await asyncio.sleep(0.01)
    assert entered.is_set(), "the callback worker never claimed"

    await engine.app.drain(timeout=600)
    release.set()
    await asyncio.sleep(0.3)
    late = engine.requests("POST", r"/channels/create", answered=True)
    for create in late:  # end a wrongly started attempt, so teardown need not cancel it
        await engine.hangup(create.params["channelId"], cause=19)

    assert not late, "a callback attempt started after drain() returned"
    (job,) = job_status(engine).values()  # handed back untried, for any node to take
    assert (job["status"], job["attempts_made"], job["node"]) == ("pending", 0, None)


# -- 7. a rating prompt Asterisk never starts ----------------------------------------------


async def test_rating_prompt_that_never_starts_is_requested_again(
    start_engine_app: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rating is asked right after the employee's leg left the bridge, when Asterisk
    may drop a playback request: a prompt without PlaybackStarted is asked for again and
    the digit pressed during the second one is still stored as the rating."""
    monkeypatch.setattr(media_module, "PLAYBACK_START_TIMEOUT_SECONDS", 0.2)
    engine = await start_engine_app({"numbers": {"paris": {"rating": True}}})
    engine.plan_playback(RATING, "never_start", "hold")
    caller, leg, _bridge = await conversation(engine)

    await engine.hangup(leg)  # the employee hangs up first: the caller is asked to rate
    await engine.wait_for(lambda: engine.played(caller).count(RATING) >= 2, what="a 2nd rating")
    await engine.wait_for(
        lambda: any(p["media_uri"] == RATING for p in engine.fake.playbacks.values()),
        what="the second rating prompt to play",
    )
    await engine.press(caller, "4")

    (call,) = await engine.calls_done()
    assert engine.played(caller).count(RATING) == 2
    assert call["rating"] == 4
    assert call["route"] == ["queue:sales", "employee:anna", "rating:4"]
    assert call["disposition"] == "answered"
    assert engine.played(caller)[-1] == "sound:numcfg/en/rating-thanks"
    await engine.assert_idle()


# -- 8. the IVR ------------------------------------------------------------------------------


IVR = {
    "ivr_menus": {
        "main": {
            "prompt": IVR_MAIN,
            "first_digit_timeout": 2,
            "inter_digit_timeout": 1,
            "retries": 3,
            "options": {
                "1": {"action": "employee", "employee": "anna"},
                "9": {"action": "repeat"},
            },
            "on_failure": {"action": "hangup"},
        }
    },
    "numbers": {"paris": {"routing": {"queue": None, "ivr": "main"}}},
}


async def test_ivr_invalid_digit_then_valid_option(start_engine_app: StartEngine) -> None:
    """A wrong key hears "ivr-invalid" and the menu again; the right key then runs the
    option's action, and the route says so (SPEC section 7: ivr:<menu>:<digit>)."""
    engine = await start_engine_app(IVR)
    caller = await engine.incoming()
    await engine.wait_for(lambda: engine.played(caller) == [IVR_MAIN], what="the menu")
    await engine.press(caller, "7")
    await engine.wait_for(
        lambda: engine.played(caller) == [IVR_MAIN, IVR_INVALID, IVR_MAIN],
        what="ivr-invalid then the menu again",
    )
    await engine.press(caller, "1")

    leg = await engine.next_originate()
    assert leg.params["endpoint"] == "PJSIP/101"
    await engine.answer_leg(leg.params["channelId"])
    await engine.wait_bridged(caller, leg.params["channelId"])
    await engine.hangup(caller)

    (call,) = await engine.calls_done()
    assert call["route"] == ["ivr:main:1", "employee:anna"]
    assert call["disposition"] == "answered"
    assert call["employee"] == "anna"
    assert engine.played(caller) == [IVR_MAIN, IVR_INVALID, IVR_MAIN, "tone:ring"]
    await engine.assert_idle()
