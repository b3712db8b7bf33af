"""A local stand-in for an OpenAI-compatible speech-to-text server, and test sentences
spoken by espeak-ng the way a phone line carries them.

The server implements POST /v1/audio/transcriptions as the OpenAI API documents it
(multipart `file`, `model`, `language`, `response_format`; answer {"text": ...}) and
records every request; `mode` (or `script`, one mode per request) makes it answer,
answer 500, or hang.
"""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

# Chosen among sentences pocketsphinx reads well on 8 kHz telephone audio: everyday words
# a caller says. Tests ask for most of its words, not all (the model is a small one).
SENTENCE = "good morning I would like to talk about my account"


def render_sentence(target: Path, text: str = SENTENCE) -> Path:
    """`text` spoken by espeak-ng, as Asterisk plays and records it: 8 kHz mono 16-bit WAV
    (the same voice and effects as sounds/render's prompts)."""
    spoken = target.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(spoken), text], check=True)
    subprocess.run(
        ["sox", str(spoken), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
         str(target), "highpass", "120", "gain", "-n", "-3", "pad", "0.15", "0.3"],
        check=True,
    )  # fmt: skip
    spoken.unlink()
    return target


def words_found(expected: str, transcript: str | None) -> int:
    """How many words of `expected` the transcript holds."""
    heard = set((transcript or "").lower().split())
    return sum(word in heard for word in expected.lower().split())


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]
    fields: dict[str, Any]  # form field -> text, or for `file` (filename, bytes)


@dataclass
class SpeechServer:
    text: str = "hello from the stand-in"
    mode: str = "answer"  # answer | error (HTTP 500) | hang
    script: list[str] = field(default_factory=list)  # modes for the next requests, in order
    requests: list[SeenRequest] = field(default_factory=list)
    url: str = ""  # the API base, e.g. http://127.0.0.1:PORT/v1
    _runner: web.AppRunner | None = None
    _hanging: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> SpeechServer:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"
        return self

    async def stop(self) -> None:
        self._hanging.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _transcribe(self, request: web.Request) -> web.Response:
        fields: dict[str, Any] = {}
        async for part in await request.multipart():
            if part.name == "file":
                fields["file"] = (part.filename, await part.read())
            else:
                fields[part.name] = await part.text()
        self.requests.append(SeenRequest(request.path, dict(request.headers), fields))
        mode = self.script.pop(0) if self.script else self.mode
        if mode == "hang":
            await self._hanging.wait()
        if mode == "error":
            return web.json_response({"error": {"message": "model exploded"}}, status=500)
        if "file" not in fields or "model" not in fields:
            return web.json_response({"error": {"message": "file and model needed"}}, status=400)
        return web.json_response({"text": self.text})
