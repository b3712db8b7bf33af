"""Media helpers: options in, a result value out.

A normal ending (finished, hangup, timeout, interrupted by a digit) is a value; only a
fault of ours or of Asterisk is an exception. Each helper claims its playback or recording
id before starting it, so no event can arrive unrouted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from .client import AriClient
from .errors import AriNotFound
from .events import PlaybackFinished, PlaybackStarted, StreamResumed
from .inbox import Inbox, new_id

# ARI does not report every playback failure (e.g. a missing sound on some paths), so a
# playback that has not started within this time is treated as failed.
PLAYBACK_START_TIMEOUT_SECONDS = 3.0


class Status(Enum):
    FINISHED = "finished"
    HANGUP = "hangup"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"  # stopped by a caller's digit
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PlayResult:
    status: Status
    media: str


async def play(
    client: AriClient,
    inbox: Inbox,
    media: str,
    *,
    channel_id: str | None = None,
    lang: str | None = None,
    interrupt_on_digit: bool = False,
) -> PlayResult:
    """Play `media` to a channel (default: the call's caller) and wait until it ends.

    With `interrupt_on_digit`, a digit pressed during the playback (or already waiting in
    the inbox) stops it; the digits stay in `inbox.digits` for the caller to read.
    """
    channel = channel_id or inbox.primary
    if inbox.hung_up:
        return PlayResult(Status.HANGUP, media)
    if interrupt_on_digit and inbox.digits:
        return PlayResult(Status.INTERRUPTED, media)
    playback_id = new_id("pb")
    inbox.claim(playback_id)
    try:
        try:
            await client.play(channel, media, playback_id=playback_id, lang=lang)
        except AriNotFound:
            return PlayResult(Status.HANGUP, media)
        started = False
        start_deadline = time.monotonic() + PLAYBACK_START_TIMEOUT_SECONDS
        while True:
            timeout = None if started else max(0.0, start_deadline - time.monotonic())
            event = await inbox.get(timeout)
            if inbox.hung_up:
                return PlayResult(Status.HANGUP, media)
            if interrupt_on_digit and inbox.digits:
                await _stop_quietly(client, playback_id)
                return PlayResult(Status.INTERRUPTED, media)
            match event:
                case None:
                    await _stop_quietly(client, playback_id)
                    return PlayResult(Status.FAILED, media)
                case PlaybackStarted(playback_id=pid) if pid == playback_id:
                    started = True
                case PlaybackFinished(playback_id=pid, state=state) if pid == playback_id:
                    return PlayResult(
                        Status.FAILED if state == "failed" else Status.FINISHED, media
                    )
                case StreamResumed():
                    # Events of the gap are lost: ask whether the playback still exists.
                    try:
                        await client.get_playback(playback_id)
                    except AriNotFound:
                        return PlayResult(Status.FINISHED, media)
    finally:
        inbox.release(playback_id)


async def _stop_quietly(client: AriClient, playback_id: str) -> None:
    with contextlib.suppress(AriNotFound):
        await client.stop_playback(playback_id)


async def wait_digits(
    inbox: Inbox,
    *,
    first_timeout: float,
    inter_timeout: float,
    done: Callable[[str], Status | None],
) -> tuple[Status, str]:
    """Collect digits until `done(buffer)` says complete/invalid or a timeout passes.

    `done` returns Status.FINISHED (complete), Status.FAILED (invalid) or None (need more).
    Returns (FINISHED, buffer) when complete, (TIMEOUT, buffer) on a timeout (buffer may
    hold a partial entry), (HANGUP, buffer) when the caller hangs up.
    """
    buffer = inbox.take_digits()
    loop = asyncio.get_running_loop()
    while True:
        if buffer:
            verdict = done(buffer)
            if verdict is not None:
                return verdict, buffer
        if inbox.hung_up:
            return Status.HANGUP, buffer
        deadline = loop.time() + (inter_timeout if buffer else first_timeout)
        while not inbox.digits and not inbox.hung_up:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return Status.TIMEOUT, buffer
            await inbox.get(remaining)
        buffer += inbox.take_digits()
