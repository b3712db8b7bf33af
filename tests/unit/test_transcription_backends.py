"""The transcription backends (SPEC section 10) on real audio and a real HTTP server:
pocketsphinx reads a spoken sentence from telephone-quality audio; the OpenAI-compatible
client sends the documented form and turns 500s and silence into failures."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asterisk_bridge.transcription import (
    OpenAiTranscriber,
    PocketsphinxTranscriber,
    TranscriptionError,
)
from tests.unit.stt_fakes import SENTENCE, SpeechServer, render_sentence, words_found


@pytest.fixture
async def server() -> AsyncIterator[SpeechServer]:
    fake = await SpeechServer(text="  I would like to talk about my account ").start()
    yield fake
    await fake.stop()


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_sentence(tmp_path_factory.mktemp("stt") / "sentence.wav")


async def test_pocketsphinx_reads_most_words_of_a_spoken_sentence(sentence_wav: Path) -> None:
    transcriber = PocketsphinxTranscriber()
    try:
        text = await transcriber.transcribe(sentence_wav, language="en")
    finally:
        await transcriber.close()
    expected = len(SENTENCE.split())
    assert words_found(SENTENCE, text) > expected / 2, text


@pytest.fixture
def longer(sentence_wav: Path, tmp_path: Path) -> Path:
    """The sentence six times over: long enough that a blocked loop would show."""
    path = tmp_path / "longer.wav"
    subprocess.run(["sox", *[str(sentence_wav)] * 6, str(path)], check=True)
    return path


async def test_pocketsphinx_decodes_off_the_event_loop(longer: Path) -> None:
    """While a recording is decoded, the loop (and so every call) keeps being served
    (pocketsphinx holds the GIL: in a thread it stalled the loop for 1.4 s here)."""
    transcriber = PocketsphinxTranscriber()
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    try:
        text = await transcriber.transcribe(longer, language="en")
    finally:
        took = time.monotonic() - started
        ticker.cancel()
        await transcriber.close()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert took > 0.5 and words_found(SENTENCE, text) > 5  # real decoding happened
    assert max(gaps) < 0.1  # and the loop never waited for it


async def test_pocketsphinx_refuses_a_language_it_has_no_model_for(sentence_wav: Path) -> None:
    transcriber = PocketsphinxTranscriber()
    try:
        with pytest.raises(TranscriptionError, match="English model only"):
            await transcriber.transcribe(sentence_wav, language="fr")
    finally:
        await transcriber.close()


async def test_pocketsphinx_reports_an_unreadable_recording(tmp_path: Path) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....not audio")
    transcriber = PocketsphinxTranscriber()
    try:
        with pytest.raises(TranscriptionError, match=r"ffmpeg cannot read broken\.wav"):
            await transcriber.transcribe(broken, language="en")
    finally:
        await transcriber.close()


async def test_openai_backend_sends_the_documented_form_and_reads_the_text(
    server: SpeechServer, sentence_wav: Path
) -> None:
    transcriber = OpenAiTranscriber(url=server.url, model="whisper-1", api_key="k3y", timeout=5)
    try:
        text = await transcriber.transcribe(sentence_wav, language="fr")
    finally:
        await transcriber.close()
    assert text == "I would like to talk about my account"
    (seen,) = server.requests
    assert seen.path == "/v1/audio/transcriptions"
    assert seen.headers["Authorization"] == "Bearer k3y"
    assert seen.fields["model"] == "whisper-1"
    assert seen.fields["language"] == "fr"
    filename, audio = seen.fields["file"]
    assert filename == "sentence.wav" and audio == await asyncio.to_thread(sentence_wav.read_bytes)


async def test_openai_backend_sends_no_authorization_without_a_key(
    server: SpeechServer, sentence_wav: Path
) -> None:
    transcriber = OpenAiTranscriber(url=server.url + "/", model="m", api_key=None, timeout=5)
    try:
        await transcriber.transcribe(sentence_wav, language="en")
    finally:
        await transcriber.close()
    assert "Authorization" not in server.requests[0].headers


async def test_openai_backend_500_is_a_failure_naming_the_status(
    server: SpeechServer, sentence_wav: Path
) -> None:
    server.mode = "error"
    transcriber = OpenAiTranscriber(url=server.url, model="m", api_key=None, timeout=5)
    try:
        with pytest.raises(TranscriptionError, match="answered 500"):
            await transcriber.transcribe(sentence_wav, language="en")
    finally:
        await transcriber.close()


async def test_openai_backend_that_hangs_fails_after_its_timeout(
    server: SpeechServer, sentence_wav: Path
) -> None:
    server.mode = "hang"
    transcriber = OpenAiTranscriber(url=server.url, model="m", api_key=None, timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(TranscriptionError, match="no answer in time"):
            await transcriber.transcribe(sentence_wav, language="en")
    finally:
        await transcriber.close()
    assert time.monotonic() - started < 3.0


async def test_openai_backend_unreachable_is_a_failure(sentence_wav: Path) -> None:
    transcriber = OpenAiTranscriber(
        url="http://127.0.0.1:9/v1", model="m", api_key=None, timeout=2
    )  # nothing listens on the discard port
    try:
        with pytest.raises(TranscriptionError):
            await transcriber.transcribe(sentence_wav, language="en")
    finally:
        await transcriber.close()
