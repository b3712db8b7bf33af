"""Media helpers: options in, a result value out.

A normal ending (finished, hangup, timeout, interrupted by a digit) is a value; only a
fault of ours or of Asterisk is an exception. Each helper claims its playback or recording
id before starting it, so no event can arrive unrouted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from .client import AriClient
from .errors import AriNotFound
from .events import ChannelDtmfReceived, PlaybackFinished, PlaybackStarted
from .inbox import Inbox, Kind, new_id
from .playback_stop import stop_playback_surely

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
    never_started: bool = False  # Asterisk took the request but never began to play


async def play(
    client: AriClient,
    inbox: Inbox,
    media: str,
    *,
    channel_id: str | None = None,
    lang: str | None = None,
    interrupt_on_digit: bool = False,
    start_attempts: int = 1,
) -> PlayResult:
    """Play `media` to a channel (default: the call's caller) and wait until it ends.

    With `interrupt_on_digit`, a digit pressed during the playback (or already waiting in
    the inbox) stops it; the digits stay in `inbox.digits` for the caller to read.
    A playback Asterisk never starts is asked for again, up to `start_attempts` times in
    all (a request that lands while the channel leaves a bridge is silently dropped).
    """
    channel = channel_id or inbox.primary
    result = PlayResult(Status.FAILED, media)
    for _attempt in range(max(1, start_attempts)):
        result = await _play_once(
            client, inbox, media, channel, lang=lang, interrupt_on_digit=interrupt_on_digit
        )
        if not result.never_started:
            break
    return result


async def _play_once(
    client: AriClient,
    inbox: Inbox,
    media: str,
    channel: str,
    *,
    lang: str | None,
    interrupt_on_digit: bool,
) -> PlayResult:
    if inbox.hung_up:
        return PlayResult(Status.HANGUP, media)
    if interrupt_on_digit and inbox.digits:
        return PlayResult(Status.INTERRUPTED, media)
    playback_id = new_id("pb")
    inbox.claim(playback_id, Kind.PLAYBACK)
    try:
        with inbox.watch(
            playback_id, channel, types=(PlaybackStarted, PlaybackFinished, ChannelDtmfReceived)
        ) as events:
            try:
                await client.play(channel, media, playback_id=playback_id, lang=lang)
            except AriNotFound:
                return PlayResult(Status.HANGUP, media)
            started = False
            start_deadline = time.monotonic() + PLAYBACK_START_TIMEOUT_SECONDS
            while True:
                timeout = None if started else max(0.0, start_deadline - time.monotonic())
                event = await events.next(timeout)
                if inbox.hung_up:
                    return PlayResult(Status.HANGUP, media)
                if interrupt_on_digit and inbox.digits:
                    await _stop_quietly(client, playback_id)
                    return PlayResult(Status.INTERRUPTED, media)
                match event:
                    case None:
                        await _stop_quietly(client, playback_id)
                        return PlayResult(Status.FAILED, media, never_started=True)
                    case PlaybackStarted(playback_id=pid) if pid == playback_id:
                        started = True
                    case PlaybackFinished(playback_id=pid, state=state) if pid == playback_id:
                        failed = state == "failed"
                        return PlayResult(Status.FAILED if failed else Status.FINISHED, media)
    finally:
        inbox.release(playback_id)


async def _stop_quietly(client: AriClient, playback_id: str) -> None:
    await stop_playback_surely(client, playback_id)


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
    with inbox.watch(inbox.primary, types=(ChannelDtmfReceived,)) as events:
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
                await events.next(remaining)
            buffer += inbox.take_digits()
