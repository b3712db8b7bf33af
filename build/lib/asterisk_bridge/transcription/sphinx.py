"""The embedded default: pocketsphinx, offline, with the English model its wheel ships.

pocketsphinx decodes while holding Python's GIL (a thread would stall the event loop, and
with it every call, for as long as a recording takes), so each recording is decoded in a
child process of its own, at a lower CPU priority: calls never wait for it, one recording
at a time takes at most one core, and a stop or a timeout kills the child at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Final

from .base import TranscriptionError

# The only model the wheel ships (pocketsphinx.get_model_path()/en-us).
LANGUAGE: Final = "en"
DECODER_MODULE: Final = "asterisk_bridge.transcription.sphinx_decode"
# The child's own errors are a line or two; more is not worth keeping.
MAX_ERROR_CHARS: Final = 300


class PocketsphinxTranscriber:
    def __init__(self) -> None:
        self._one_at_a_time = asyncio.Lock()

    async def transcribe(self, path: Path, *, language: str) -> str:
        if language != LANGUAGE:
            raise TranscriptionError(
                f"pocketsphinx has an English model only, not {language!r}: "
                "use transcription.backend openai"
            )
        async with self._one_at_a_time:
            return await self._decode(path)

    async def _decode(self, path: Path) -> str:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            DECODER_MODULE,
            str(path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await child.communicate()
        except asyncio.CancelledError:  # timed out, or numcfg is stopping
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()
            raise
        if child.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            why = lines[-1][:MAX_ERROR_CHARS] if lines else f"exit status {child.returncode}"
            raise TranscriptionError(why)
        return out.decode().strip()

    async def close(self) -> None:
        return None  # no child outlives its transcribe()
