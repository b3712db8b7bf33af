"""The embedded default: pocketsphinx, offline, with the English model its wheel ships.

Decoding is CPU work (about half the audio's length on one core here), so it runs in one
thread of its own: the event loop never waits for it, and transcriptions never take more
than one core however many are queued. The audio is cut at pauses (pocketsphinx's own
voice-activity segmenter) and each stretch of speech decoded as one utterance; between
two, a stop request (timeout, numcfg stopping) ends the decode, so a stop never waits for
an hour-long recording.
"""

from __future__ import annotations

import asyncio
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pocketsphinx import Decoder, Segmenter

from .audio import SAMPLE_RATE, pcm16k
from .base import TranscriptionError

# The only model the wheel ships (pocketsphinx.get_model_path()/en-us).
LANGUAGE = "en"


class PocketsphinxTranscriber:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pocketsphinx")
        self._decoder: Decoder | None = None  # loaded once (half a second), in the thread

    async def transcribe(self, path: Path, *, language: str) -> str:
        if language != LANGUAGE:
            raise TranscriptionError(
                f"pocketsphinx has an English model only, not {language!r}: "
                "use transcription.backend openai"
            )
        stop = threading.Event()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._transcribe, path, stop)
        except asyncio.CancelledError:
            stop.set()  # the thread ends at the next pause in the speech
            raise

    def _transcribe(self, path: Path, stop: threading.Event) -> str:
        pcm = pcm16k(path)
        if self._decoder is None:
            try:
                self._decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
            except RuntimeError as exc:
                raise TranscriptionError(f"pocketsphinx cannot start: {exc}") from exc
        decoder = self._decoder
        words: list[str] = []
        for segment in Segmenter(sample_rate=SAMPLE_RATE).segment(io.BytesIO(pcm)):
            if stop.is_set():
                raise TranscriptionError("stopped")
            decoder.start_utt()
            decoder.process_raw(segment.pcm, full_utt=True)
            decoder.end_utt()
            hypothesis = decoder.hyp()
            if hypothesis is not None and hypothesis.hypstr:
                words.append(hypothesis.hypstr)
        return " ".join(words)

    async def close(self) -> None:
        # A decode in progress was told to stop (its task was cancelled): wait for it, so
        # no thread outlives the app.
        await asyncio.to_thread(self._executor.shutdown, wait=True)
