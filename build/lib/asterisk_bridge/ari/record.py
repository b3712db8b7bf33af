"""Recording helper: options in, a result value out (as CyCoreSystems' ext/record).

`start_recording` subscribes to the recording's events before asking ARI to record, then
waits for RecordingStarted: `record` can answer 201 and be followed by RecordingFailed,
or by nothing at all, so a recording that has not started within
RECORDING_START_TIMEOUT_SECONDS is reported as not started instead of being waited on.
A started recording is a `Recording` handle: `stop()` ends it and waits for the file,
`finished()` waits for Asterisk to end it (silence, max duration, the caller's hangup).
Normal endings are values; the file stays in Asterisk's spool until `discard_stored`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from enum import Enum

from .client import AriClient, RecordOptions
from .errors import AriError, AriNotFound
from .events import RecordingFailed, RecordingFinished, RecordingStarted, recording_key
from .inbox import Inbox, Kind, Subscription

# Asterisk starts a recording within milliseconds (after the beep, when asked for one);
# past this it will not start, and the call must not wait on it.
RECORDING_START_TIMEOUT_SECONDS = 3.0
# After a stop (or the channel's hangup) Asterisk closes the file and reports it within
# moments; past this the event was lost and the file is taken as it is.
RECORDING_STOP_SECONDS = 10.0


class RecordStatus(Enum):
    FINISHED = "finished"  # the file is complete in the spool
    FAILED = "failed"  # Asterisk reported a failure (cause in the result)
    NOT_STARTED = "not_started"  # no RecordingStarted in time, or the request was refused
    GONE = "gone"  # the channel or bridge no longer exists
    TIMEOUT = "timeout"  # started, but its end was never reported in time


@dataclass(frozen=True, slots=True)
class RecordResult:
    status: RecordStatus
    name: str
    duration: int | None = None
    cause: str | None = None

    @property
    def has_file(self) -> bool:
        """Whether a file may be in the spool (a lost end event can still leave one)."""
        return self.status in (RecordStatus.FINISHED, RecordStatus.TIMEOUT)


class Recording:
    """A recording that has started; owns its routing key until closed."""

    def __init__(self, *, client: AriClient, inbox: Inbox, name: str, events: Subscription) -> None:
        self.client = client
        self.inbox = inbox
        self.name = name
        self.started_at = time.monotonic()
        self._events = events

    async def stop(self, *, timeout: float = RECORDING_STOP_SECONDS) -> RecordResult:
        """Stop recording and wait until Asterisk has closed the file."""
        with contextlib.suppress(AriNotFound):  # already over: its end event is queued
            await self.client.stop_recording(self.name)
        return await self.finished(timeout=timeout)

    async def finished(self, *, timeout: float | None) -> RecordResult:
        """Wait for the recording's end (None: as long as it takes). Closes the handle."""
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            settling = False
            while True:
                if self.inbox.hung_up and not settling:
                    # The caller left: Asterisk ends the recording by itself, at once.
                    settling = True
                    settle = time.monotonic() + RECORDING_STOP_SECONDS
                    deadline = settle if deadline is None else min(deadline, settle)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return RecordResult(RecordStatus.TIMEOUT, self.name)
                match await self._events.next(remaining):
                    case RecordingFinished(name=n, duration=duration) if n == self.name:
                        return RecordResult(RecordStatus.FINISHED, self.name, duration)
                    case RecordingFailed(name=n, cause=cause) if n == self.name:
                        return RecordResult(RecordStatus.FAILED, self.name, cause=cause)
        finally:
            self.close()

    def close(self) -> None:
        self._events.close()
        self.inbox.release(recording_key(self.name))


async def start_recording(
    client: AriClient,
    inbox: Inbox,
    options: RecordOptions,
    *,
    channel_id: str | None = None,
    bridge_id: str | None = None,
) -> Recording | RecordResult:
    """Record a channel (what it sends: voicemail) or a bridge (the mix: a conversation).
    Returns the running `Recording`, or the result of a recording that never started."""
    if (channel_id is None) == (bridge_id is None):
        raise ValueError("record exactly one of a channel or a bridge")
    name = options.name
    key = recording_key(name)
    inbox.claim(key, Kind.RECORDING)
    events = inbox.watch(key).open()
    try:
        if channel_id is not None:
            await client.record_channel_with(channel_id, options)
        else:
            await client.record_bridge_with(bridge_id or "", options)
        result = await _await_start(events, name)
        if result is not None and result.status is RecordStatus.NOT_STARTED:
            result = await _started_after_all(client, name, result)
    except AriNotFound:
        result = RecordResult(RecordStatus.GONE, name)
    except AriError as exc:
        result = RecordResult(RecordStatus.NOT_STARTED, name, cause=str(exc))
    if result is not None:
        events.close()
        inbox.release(key)
        return result
    return Recording(client=client, inbox=inbox, name=name, events=events)


async def _await_start(events: Subscription, name: str) -> RecordResult | None:
    """None once started; else why not."""
    deadline = time.monotonic() + RECORDING_START_TIMEOUT_SECONDS
    while (remaining := deadline - time.monotonic()) > 0:
        match await events.next(remaining):
            case RecordingStarted(name=n) if n == name:
                return None
            case RecordingFailed(name=n, cause=cause) if n == name:
                return RecordResult(RecordStatus.FAILED, name, cause=cause)
            case RecordingFinished(name=n) as ended if n == name:
                # Started and ended before we looked (a very short message): keep the end
                # for `finished()`.
                events.put(ended)
                return None
    return RecordResult(RecordStatus.NOT_STARTED, name, cause="never started")


async def _started_after_all(
    client: AriClient, name: str, result: RecordResult
) -> RecordResult | None:
    """No RecordingStarted came (it may have been lost in a websocket gap): ask Asterisk.
    A live recording did start; a stored one is discarded, so nothing we gave up on is
    left in the spool."""
    if await client.live_recording(name) is not None:
        return None
    await discard_stored(client, name)
    return result


async def fetch_stored(client: AriClient, name: str) -> bytes:
    """The stored recording's file (raises AriError when it is not there)."""
    return await client.recording_file(name)


async def discard_stored(client: AriClient, name: str) -> None:
    """Remove the file from Asterisk's spool (numcfg keeps its own copy)."""
    with contextlib.suppress(AriNotFound):
        await client.delete_stored_recording(name)
