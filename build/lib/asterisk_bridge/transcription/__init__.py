"""Transcription of call recordings after the call (SPEC section 10), never on its path.

- base.py: the Transcriber protocol every backend offers, and TranscriptionError.
- audio.py: a recording as 16 kHz mono 16-bit PCM (ffmpeg), what pocketsphinx reads.
- sphinx.py: the embedded default, pocketsphinx (offline, its wheel's English model).
- http_api.py: any OpenAI-compatible POST <url>/audio/transcriptions server.
- worker.py: works the store's transcription jobs one at a time, retries failures, keeps
  to transcription.monthly_minutes and hands the text to the CRM.
"""

from __future__ import annotations

from ..config.schema import TranscriptionSettings
from .base import Transcriber, TranscriptionError
from .http_api import OpenAiTranscriber
from .sphinx import PocketsphinxTranscriber
from .worker import TranscriptionWorker, WakeOnRecorded


def build_transcriber(settings: TranscriptionSettings) -> Transcriber:
    """The backend `settings.backend` names (the config checks made sure it is usable)."""
    if settings.backend == "openai":
        return OpenAiTranscriber(
            url=settings.url or "",
            model=settings.model,
            api_key=settings.api_key,
            timeout=settings.timeout,
        )
    return PocketsphinxTranscriber()


__all__ = [
    "OpenAiTranscriber",
    "PocketsphinxTranscriber",
    "Transcriber",
    "TranscriptionError",
    "TranscriptionWorker",
    "WakeOnRecorded",
    "build_transcriber",
]
