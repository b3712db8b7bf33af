"""What every transcription backend offers."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class TranscriptionError(Exception):
    """One try failed (the server answered an error, the audio could not be read...); the
    worker retries it up to transcription.attempts times."""


class Transcriber(Protocol):
    async def transcribe(self, path: Path, *, language: str) -> str:
        """The words spoken in the WAV at `path` (`language`: ISO 639-1, e.g. "en");
        raises TranscriptionError. The caller bounds its time (transcription.timeout)."""
        ...

    async def close(self) -> None: ...
