"""Transcripts of recorded calls on the real rig (SPEC section 10, issue 11): the caller
says a known sentence in a recorded conversation; pocketsphinx (the embedded default)
finds most of its words after the call, the API serves them and the Bitrix24 stand-in
portal gets them as a timeline comment; an OpenAI-compatible stand-in is used the same
way; a backend that hangs or answers 500 leaves `failed` after its retries while calls go
on as if nothing were wrong."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.unit.crm_fakes import FakeBitrix, FakeServer
from tests.unit.stt_fakes import SENTENCE, SpeechServer, render_sentence, words_found

from .harness import CallerLeg, Employee, Harness, calls_done

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

API = "http://127.0.0.1:18090"
AUTH = {"Authorization": "Bearer test-token"}
SPOKEN = "sound:numcfg-test/transcribe-sentence"


@pytest.fixture(scope="module")
def spoken_sentence(asterisk_rig: str) -> Iterator[str]:
    """The test sentence where Asterisk plays sounds from (as sounds/render's prompts)."""
    folder = Path(asterisk_rig) / "usr/share/asterisk/sounds/numcfg-test"
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    target = render_sentence(folder / "transcribe-sentence.wav")
    target.chmod(0o644)
    yield SPOKEN
    target.unlink(missing_ok=True)


def recorded_config(transcription: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "queues": {
            "sales": {"members": ["anna"], "distribution": "in_order", "ring_time": 5},
        },
        "numbers": {
            "paris": {
                "number": "+33185000000",
                "routing": {"greeting": None, "queue": "sales"},
                "recording": {"record_all": True, "warning": False, "transcribe": True},
                **extra,
            }
        },
        "transcription": transcription,
    }


async def talk(harness: Harness, app: Any, media: str | None, *, talk_for: float) -> CallerLeg:
    """One call answered by anna; the caller says `media`; anna hangs up `talk_for` s later."""
    await asyncio.to_thread(app.store.people.set_workday, "anna", "working")
    harness.employees["101"] = Employee("answer", answer_after=0.2, hangup_after=talk_for)
    leg = await harness.call("+33185000000", caller="+33698000003")
    await harness.bridged(leg)
    if media is not None:
        await asyncio.sleep(0.5)  # the recording starts as the bridge forms
        await harness.speak(leg, media)
    await harness.ended(leg, timeout=30)
    return leg


async def transcript_settled(app: Any, call_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        details = await asyncio.to_thread(app.store.calls.get, call_id)
        if details is not None and details.transcript_status not in (None, "pending"):
            return details.to_json()
        assert time.monotonic() < deadline, f"transcript of {call_id} still pending"
        await asyncio.sleep(0.2)


async def test_pocketsphinx_transcribes_the_sentence_said_in_a_recorded_call(
    harness: Harness, numcfg, spoken_sentence: str
) -> None:
    portal = FakeBitrix()
    server = await FakeServer(portal.answer).start()
    try:
        config = recorded_config(
            {"retry_delay": 1}, crm={"create_lead": "incoming", "lead_source": "CALL"}
        )
        config["crm"] = {"backend": "bitrix24", "url": server.url + "/rest/1/abc/", "timeout": 2}
        app = await numcfg(config)
        await talk(harness, app, spoken_sentence, talk_for=6.0)
        (call,) = await calls_done(app)
        assert call["disposition"] == "answered" and call["recording"]["seconds"] > 4
        assert call["transcript_status"] == "pending"  # after the call, off its path
        done = await transcript_settled(app, call["id"], timeout=60)
        assert done["transcript_status"] == "done"
        found = words_found(SENTENCE, done["transcript"])
        assert found > len(SENTENCE.split()) / 2, done["transcript"]
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{API}/api/calls/{call['id']}/transcript", headers=AUTH) as resp,
        ):
            assert resp.status == 200
            assert await resp.json() == {
                "id": call["id"],
                "transcript_status": "done",
                "transcript": done["transcript"],
            }
        deadline = time.monotonic() + 10
        while not server.by_method("crm.timeline.comment.add"):
            assert time.monotonic() < deadline, "no timeline comment"
            await asyncio.sleep(0.1)
        (comment,) = server.by_method("crm.timeline.comment.add")
        assert comment.json["fields"]["ENTITY_TYPE"] == "lead"
        assert str(comment.json["fields"]["ENTITY_ID"]) == str(call["crm"]["id"])
        assert done["transcript"] in comment.json["fields"]["COMMENT"]
    finally:
        await server.stop()


async def test_an_openai_compatible_server_transcribes_the_recording(
    harness: Harness, numcfg, spoken_sentence: str
) -> None:
    stt = await SpeechServer(text="Good morning, I would like to talk about my account.").start()
    try:
        app = await numcfg(
            recorded_config({"backend": "openai", "url": stt.url, "model": "whisper-1"})
        )
        await talk(harness, app, spoken_sentence, talk_for=5.0)
        (call,) = await calls_done(app)
        done = await transcript_settled(app, call["id"], timeout=30)
        assert done["transcript_status"] == "done"
        assert done["transcript"] == "Good morning, I would like to talk about my account."
        (seen,) = stt.requests
        filename, audio = seen.fields["file"]
        assert filename == call["recording"]["file"] and audio[:4] == b"RIFF"
        assert seen.fields["model"] == "whisper-1" and seen.fields["language"] == "en"
    finally:
        await stt.stop()


async def test_a_backend_that_hangs_or_answers_500_leaves_failed_and_calls_go_on(
    harness: Harness, numcfg
) -> None:
    stt = await SpeechServer(mode="error", script=["hang"]).start()
    try:
        app = await numcfg(
            recorded_config(
                {
                    "backend": "openai",
                    "url": stt.url,
                    "timeout": 3,
                    "attempts": 3,
                    "retry_delay": 0.5,
                }
            )
        )
        await talk(harness, app, None, talk_for=1.5)
        (first,) = await calls_done(app)
        # The first transcription now hangs on the server: the next call is served as usual.
        deadline = time.monotonic() + 10
        while not stt.requests:
            assert time.monotonic() < deadline, "the backend was never asked"
            await asyncio.sleep(0.05)
        started = time.monotonic()
        await talk(harness, app, None, talk_for=1.5)
        second = next(c for c in await calls_done(app) if c["id"] != first["id"])
        assert time.monotonic() - started < 10
        for call in (first, second):
            assert call["disposition"] == "answered" and call["recording"]["seconds"] > 1
        for call in (first, second):
            failed = await transcript_settled(app, call["id"], timeout=30)
            assert failed["transcript_status"] == "failed" and failed["transcript"] is None
        assert len(stt.requests) == 6  # three tries each: hang, 500, 500 and 500 x3
    finally:
        await stt.stop()
