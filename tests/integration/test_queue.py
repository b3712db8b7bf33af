"""Queue groups, workday, hold music, recording with quotas and rating on the real rig
(issue 5)."""

from __future__ import annotations

import asyncio
import io
import itertools
import subprocess
import wave
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from asterisk_bridge.policy.quota import quota_period

from .harness import Employee, Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

EXT = {"anna": "101", "boris": "102", "chloe": "103"}
API = "http://127.0.0.1:18090"
API_AUTH = {"Authorization": "Bearer test-token"}


def queue_config(distribution: str = "evenly", **queue: object) -> dict:
    return {
        "queues": {
            "sales": {
                "members": ["anna", "boris", "chloe"],
                "distribution": distribution,
                "ring_time": 2,
                "max_wait": 30,
                "fallback": {"action": "hangup"},
                **queue,
            }
        },
        "numbers": {
            "paris": {"number": "+33185000000", "routing": {"greeting": None, "queue": "sales"}}
        },
    }


async def all_working(app, *names: str) -> None:
    for name in names or EXT:
        await asyncio.to_thread(app.store.people.set_workday, name, "working")


def rung_order(harness: Harness) -> list[str]:
    return [
        e["args"][1]
        for e in harness.events
        if e.get("type") == "StasisStart" and e.get("args", [None])[0] == "employee"
    ]


async def one_call(harness: Harness) -> None:
    leg = await harness.call("+33185000000")
    await harness.ended(leg, timeout=30)


@pytest.mark.parametrize(
    ("distribution", "expected"),
    [("evenly", ["101", "102", "103"]), ("in_order", ["101", "101", "101"])],
)
async def test_distribution_picks_the_expected_member_across_calls(
    harness: Harness, numcfg, distribution: str, expected: list[str]
) -> None:
    app = await numcfg(queue_config(distribution))
    await all_working(app)
    for ext in EXT.values():
        harness.employees[ext] = Employee("answer", answer_after=0.2, hangup_after=0.5)
    for _ in range(3):
        await one_call(harness)
        await calls_done(app)
    assert rung_order(harness) == expected
    calls = await calls_done(app)
    assert [c["employee"] for c in reversed(calls)] == [
        {"101": "anna", "102": "boris", "103": "chloe"}[e] for e in expected
    ]


async def test_evenly_moves_on_to_the_next_member_when_one_does_not_answer(
    harness: Harness, numcfg
) -> None:
    app = await numcfg(queue_config("in_order"))
    await all_working(app)
    harness.employees["101"] = Employee("ignore")
    harness.employees["102"] = Employee("reject")
    harness.employees["103"] = Employee("answer", answer_after=0.2, hangup_after=0.5)
    await one_call(harness)
    (call,) = await calls_done(app)
    assert rung_order(harness) == ["101", "102", "103"]
    assert call["route"] == ["queue:sales", "employee:chloe"]


async def test_all_at_once_rings_every_available_member_and_first_answer_wins(
    harness: Harness, numcfg
) -> None:
    app = await numcfg(queue_config("all_at_once", ring_time=5))
    await all_working(app)
    harness.employees["101"] = Employee("ignore")
    harness.employees["102"] = Employee("answer", answer_after=0.5, hangup_after=1.0)
    harness.employees["103"] = Employee("ignore")
    await one_call(harness)
    (call,) = await calls_done(app)
    starts = {
        e["args"][1]: e["_t"]
        for e in harness.events
        if e.get("type") == "StasisStart" and e.get("args", [None])[0] == "employee"
    }
    assert set(starts) == {"101", "102", "103"}
    assert max(starts.values()) - min(starts.values()) < 0.5  # at once
    # The losers stopped ringing as soon as boris answered, not at the end of ring_time.
    answered = next(
        e["_t"]
        for e in harness.events
        if e.get("type") == "ChannelStateChange"
        and e["channel"]["id"].startswith("leg-")
        and e["channel"]["state"] == "Up"
    )
    for ext in ("101", "103"):
        (leg_id,) = harness.employee_channels[ext]
        gone = next(
            e["_t"]
            for e in harness.events
            if e.get("type") == "ChannelDestroyed" and e["channel"]["id"] == leg_id
        )
        assert gone - answered < 1.0
    assert call["employee"] == "boris"


async def test_paused_and_ended_employees_are_never_rung(harness: Harness, numcfg) -> None:
    app = await numcfg(queue_config("in_order"))
    await all_working(app, "chloe")
    await asyncio.to_thread(app.store.people.set_workday, "anna", "paused")
    await asyncio.to_thread(app.store.people.set_workday, "boris", "ended")
    harness.employees["103"] = Employee("answer", answer_after=0.2, hangup_after=0.5)
    await one_call(harness)
    (call,) = await calls_done(app)
    assert rung_order(harness) == ["103"]
    assert call["employee"] == "chloe"


async def test_max_wait_leads_to_the_fallback(harness: Harness, numcfg) -> None:
    app = await numcfg(
        queue_config("in_order", max_wait=3, fallback={"action": "voicemail", "employee": "anna"})
    )
    await all_working(app)
    for ext in EXT.values():
        harness.employees[ext] = Employee("ignore")
    leg = await harness.call("+33185000000")
    await harness.heard(leg, "sound:numcfg/en/voicemail-intro", timeout=10)
    await harness.hangup(leg)
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["route"][0] == "queue:sales"
    assert call["route"][-1] == "voicemail:anna"
    assert call["disposition"] == "voicemail"


async def test_two_callers_served_in_arrival_order_never_sharing_an_employee(
    harness: Harness, numcfg
) -> None:
    app = await numcfg(queue_config("in_order"))
    await all_working(app, "anna")
    harness.employees["101"] = Employee("answer", answer_after=0.3, hangup_after=2.0)
    first = await harness.call("+33185000000", caller="+33611000001")
    await asyncio.sleep(0.5)
    second = await harness.call("+33185000000", caller="+33611000002")
    await harness.ended(first, timeout=30)
    await harness.ended(second, timeout=30)
    calls = {c["caller"]: c for c in await calls_done(app)}
    a, b = calls["+33611000001"], calls["+33611000002"]
    assert a["employee"] == b["employee"] == "anna"
    assert a["answered_at"] < b["answered_at"]
    # anna took the second caller only after the first conversation ended.
    assert b["answered_at"] >= a["ended_at"]
    assert rung_order(harness) == ["101", "101"]


# -- hold music ------------------------------------------------------------------------------


def dominant_frequency(audio: bytes) -> float:
    with wave.open(io.BytesIO(audio)) as wav:
        frames = wav.readframes(wav.getnframes())
        rate = wav.getframerate()
    samples = [
        int.from_bytes(frames[i : i + 2], "little", signed=True) for i in range(0, len(frames), 2)
    ]
    crossings = sum(1 for x, y in itertools.pairwise(samples) if x < 0 <= y)
    return crossings * rate / max(1, len(samples))


async def test_uploaded_mono_mp3_is_heard_on_the_next_call_and_bad_ones_are_refused(
    harness: Harness, numcfg, tmp_path: Path, asterisk_rig: str
) -> None:
    moh_dir = Path(asterisk_rig) / "var/lib/numcfg/moh-test"
    app = await numcfg(
        {
            **queue_config("in_order", max_wait=8),
            "storage": {
                "recordings": str(tmp_path / "recordings"),
                "voicemail": str(tmp_path / "voicemail"),
                "hold_music": str(moh_dir),
                "hold_music_asterisk": "/var/lib/numcfg/moh-test",
                "moh_conf": str(Path(asterisk_rig) / "etc/asterisk/numcfg-moh.conf"),
            },
        }
    )
    from asterisk_bridge.holdmusic.upload import upload_hold_music
    from asterisk_bridge.holdmusic.validate import HoldMusicRejected

    def mp3(name: str, *args: str) -> bytes:
        path = tmp_path / name
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args, str(path)], check=True)
        return path.read_bytes()

    stereo = mp3("stereo.mp3", "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-ac", "2")
    big = mp3("big.mp3", "-f", "lavfi", "-i", "anoisesrc=d=100", "-ac", "1", "-b:a", "256k")
    mono = mp3("mono.mp3", "-f", "lavfi", "-i", "sine=frequency=1000:duration=20", "-ac", "1")
    assert len(big) > 3 * 1024 * 1024 * 0.9
    config = app.config_holder.current
    for bad, code in ((stereo, "not_mono"), (big, "too_large")):
        with pytest.raises(HoldMusicRejected) as refused:
            await upload_hold_music(config, app.store, "paris", bad, app.client)
        assert refused.value.code == code
    await upload_hold_music(config, app.store, "paris", mono, app.client)

    leg = await harness.call("+33185000000")  # nobody works: the caller waits on hold
    await asyncio.sleep(1.0)
    heard = await harness.listen(leg.far_id, 3.0)
    await harness.hangup(leg)
    await harness.ended(leg)
    await calls_done(app)
    assert 900 < dominant_frequency(heard) < 1100  # the uploaded 1 kHz tone


async def test_callers_hear_their_languages_hold_music_by_default(harness: Harness, numcfg) -> None:
    app = await numcfg(queue_config("in_order", max_wait=6))
    leg = await harness.call("+33185000000")
    await asyncio.sleep(1.0)
    heard = await harness.listen(leg.far_id, 2.0)
    await harness.hangup(leg)
    await harness.ended(leg)
    await calls_done(app)
    with wave.open(io.BytesIO(heard)) as wav:
        frames = wav.readframes(wav.getnframes())
    loudest = max(
        abs(int.from_bytes(frames[i : i + 2], "little", signed=True))
        for i in range(0, len(frames), 2)
    )
    assert loudest > 1000  # not silence: the numcfg-en class ("please hold" then music)


# -- recording, quota, rating ----------------------------------------------------------------


def recorded(**number: object) -> dict:
    config = queue_config("in_order")
    config["numbers"]["paris"].update(number)
    return config


async def test_recording_length_matches_the_talk_time(
    harness: Harness, numcfg, tmp_path: Path
) -> None:
    app = await numcfg(recorded(recording={"record_all": True, "warning": False}))
    await all_working(app, "anna")
    harness.employees["101"] = Employee("answer", answer_after=0.2, hangup_after=3.0)
    leg = await harness.call("+33185000000")
    await harness.bridged(leg)
    bridged_at = harness.events[-1]["_t"]
    await harness.ended(leg, timeout=30)
    (call,) = await calls_done(app)
    (employee_leg,) = harness.employee_channels["101"]
    employee_gone = next(
        e["_t"]
        for e in harness.events
        if (e.get("type") == "ChannelHangupRequest" and e["channel"]["id"] in (employee_leg,))
        or (e.get("type") == "ChannelDestroyed" and e["channel"]["id"] == employee_leg)
    )
    talk = employee_gone - bridged_at
    assert call["recording"]["file"] == f"{call['id']}.wav"
    assert abs(call["recording"]["seconds"] - talk) <= 1.0
    with wave.open(str(tmp_path / "recordings" / call["recording"]["file"])) as wav:
        assert abs(wav.getnframes() / wav.getframerate() - talk) <= 1.0


async def test_quota_allows_exactly_the_recordings_left_when_calls_end_together(
    harness: Harness, numcfg
) -> None:
    """Eight callers talk to eight employees at the same time on the free plan with three
    recordings left this month: exactly three conversations are recorded."""
    staff = {f"e{i}": f"20{i}" for i in range(1, 9)}
    config = recorded(recording={"record_all": True, "warning": False})
    config["account"] = {"plan": "free"}
    config["employees"] = {
        name: {"name": name, "extension": ext, "endpoint": f"Local/{ext}@numcfg-test-employees"}
        for name, ext in staff.items()
    }
    config["queues"]["sales"]["members"] = list(staff)
    app = await numcfg(config)
    for name in staff:
        await asyncio.to_thread(app.store.people.set_workday, name, "working")
        harness.employees[staff[name]] = Employee("answer", answer_after=0.2, hangup_after=3.0)
    period = quota_period(datetime.now(UTC), "Europe/Paris")
    for _ in range(97):  # the free plan allows 100 a month: 3 left
        assert await asyncio.to_thread(app.store.quota.try_consume, period, limit=100)
    legs = [await harness.call("+33185000000", caller=f"+3361100000{i}") for i in range(8)]
    for leg in legs:
        await harness.ended(leg, timeout=40)
    calls = await calls_done(app, timeout=60)
    assert len(calls) == 8
    assert {c["disposition"] for c in calls} == {"answered"}
    recordings = [c for c in calls if c["recording"]]
    assert len(recordings) == 3
    assert [c["recording_skipped"] for c in calls].count("quota") == 5
    assert await asyncio.to_thread(app.store.quota.used, period) == 100


async def test_rating_digit_lands_in_the_call_details(harness: Harness, numcfg) -> None:
    app = await numcfg(recorded(rating=True))
    await all_working(app, "anna")
    harness.employees["101"] = Employee("answer", answer_after=0.2, hangup_after=1.0)
    leg = await harness.call("+33185000000")
    await harness.heard(leg, "sound:numcfg/en/rating", timeout=20)
    await harness.press(leg, "7")  # not 1-5: one retry
    await harness.heard(leg, "sound:numcfg/en/ivr-invalid")
    await harness.wait_for(lambda e: harness.media_heard(leg).count("sound:numcfg/en/rating") >= 2)
    await harness.press(leg, "4")
    await harness.heard(leg, "sound:numcfg/en/rating-thanks")
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["rating"] == 4
    assert call["route"][-1] == "rating:4"


async def test_caller_who_hangs_up_first_is_not_asked_to_rate(harness: Harness, numcfg) -> None:
    app = await numcfg(recorded(rating=True))
    await all_working(app, "anna")
    harness.employees["101"] = Employee("answer", answer_after=0.2)
    leg = await harness.call("+33185000000")
    await harness.bridged(leg)
    await asyncio.sleep(0.5)
    await harness.hangup(leg)
    await harness.ended(leg)
    (call,) = await calls_done(app)
    assert call["rating"] is None
    assert "sound:numcfg/en/rating" not in harness.media_heard(leg)


# -- workday -------------------------------------------------------------------------------


async def test_feature_codes_set_the_workday_from_the_phone(harness: Harness, numcfg) -> None:
    app = await numcfg(queue_config("in_order"))
    for code, state in (
        ("*71", "working"),
        ("*72", "paused"),
        ("*73", "working"),
        ("*74", "ended"),
    ):
        leg = await harness.call(code, context="numcfg-phones", caller="101")
        await harness.ended(leg)
        await calls_done(app)
        assert await asyncio.to_thread(app.store.people.workday, "anna") == state
    assert await asyncio.to_thread(app.store.calls.recent) == []  # not client calls


async def test_announce_position_tells_each_caller_their_place(harness: Harness, numcfg) -> None:
    app = await numcfg(queue_config("in_order", max_wait=6, announce_position=True))
    first = await harness.call("+33185000000", caller="+33611000001")
    await harness.heard(first, "sound:numcfg/en/queue-position")
    second = await harness.call("+33185000000", caller="+33611000002")
    await harness.heard(second, "sound:numcfg/en/queue-position")
    await harness.heard(first, "sound:numcfg/en/number-1")
    await harness.heard(second, "sound:numcfg/en/number-2")
    for leg in (first, second):
        await harness.hangup(leg)
        await harness.ended(leg)
    await calls_done(app)


async def test_the_position_is_spoken_in_the_numbers_language(
    harness: Harness, numcfg, asterisk_rig: str
) -> None:
    config = queue_config("in_order", max_wait=6, announce_position=True)
    config["numbers"]["paris"]["language"] = "fr"
    app = await numcfg(config)
    leg = await harness.call("+33185000000")
    await harness.heard(leg, "sound:numcfg/fr/queue-position")
    await harness.heard(leg, "sound:numcfg/fr/number-1")
    await harness.hangup(leg)
    await harness.ended(leg)
    await calls_done(app)
    spoken = Path(asterisk_rig) / "usr/share/asterisk/sounds/numcfg/fr/number-1.wav"
    assert spoken.is_file() and spoken.stat().st_size > 2000  # "un", rendered in French


async def test_unanswered_queue_calls_pause_the_employee_until_she_resumes(
    harness: Harness, numcfg
) -> None:
    """auto_pause_after: 2 (issue 11): anna lets two queue rings go unanswered, is paused
    with reason auto, is not rung again, and resuming clears it."""
    app = await numcfg(
        queue_config("in_order", ring_time=2, max_wait=12, auto_pause_after=2, members=["anna"])
    )
    await all_working(app, "anna")
    harness.employees["101"] = Employee("ignore")
    leg = await harness.call("+33185000000")
    await harness.wait_for(
        lambda e: len(harness.employee_channels.get("101", [])) >= 2,
        what="anna to be rung twice",
    )
    await asyncio.sleep(5.0)  # a third ring would have come by now
    assert len(harness.employee_channels["101"]) == 2
    async with aiohttp.ClientSession(headers=API_AUTH) as http:
        async with http.get(f"{API}/api/employees") as response:
            anna = next(e for e in (await response.json())["employees"] if e["id"] == "anna")
        assert (anna["workday"], anna["reason"]) == ("paused", "auto")
        async with http.get(f"{API}/metrics") as response:
            metrics = await response.text()
        assert 'numcfg_auto_pauses_total{employee="anna",queue="sales"} 1.0' in metrics
        await harness.hangup(leg)
        await harness.ended(leg)
        (call,) = await calls_done(app)
        assert "auto_pause:anna" in call["route"]
        url = f"{API}/api/employees/anna/workday"
        async with http.post(url, json={"state": "working"}) as response:
            assert response.status == 200
        async with http.get(f"{API}/api/employees") as response:
            anna = next(e for e in (await response.json())["employees"] if e["id"] == "anna")
        assert (anna["workday"], anna["reason"]) == ("working", None)
