"""Any OpenAI-compatible speech-to-text server: POST <url>/audio/transcriptions.

whisper.cpp's server, faster-whisper servers and hosted services all take the same
multipart form (`file`, `model`, `language`, `response_format`) and answer
{"text": "..."}. The recording is sent as Asterisk wrote it (WAV): every such server
resamples itself.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp

from .base import TranscriptionError

log = logging.getLogger("numcfg.transcription")

# Servers answer errors in a sentence or a small JSON; more than this is not an answer.
MAX_ERROR_CHARS = 300


class OpenAiTranscriber:
    def __init__(self, *, url: str, model: str, api_key: str | None, timeout: float) -> None:
        self._endpoint = url.rstrip("/") + "/audio/transcriptions"
        self._model = model
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def transcribe(self, path: Path, *, language: str) -> str:
        audio = await asyncio.to_thread(path.read_bytes)
        form = aiohttp.FormData()
        form.add_field("file", audio, filename=path.name, content_type="audio/wav")
        form.add_field("model", self._model)
        form.add_field("language", language)
        form.add_field("response_format", "json")
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self._endpoint, data=form, headers=headers) as resp:
                if resp.status >= 400:
                    body = (await resp.text(errors="replace"))[:MAX_ERROR_CHARS]
                    raise TranscriptionError(f"{self._endpoint} answered {resp.status}: {body}")
                answer = await resp.json(content_type=None)
        except TimeoutError as exc:
            raise TranscriptionError(f"{self._endpoint}: no answer in time") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise TranscriptionError(f"{self._endpoint}: {exc}") from exc
        text = answer.get("text") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise TranscriptionError(f"{self._endpoint}: the answer has no 'text'")
        return text.strip()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
