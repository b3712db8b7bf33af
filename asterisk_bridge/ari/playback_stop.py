"""Stopping a playback so that it stays stopped (the ringback tone, a prompt a digit
interrupts).

Asterisk 22.10 (res_stasis_playback.c) marks a playback PLAYING before its media is
controllable: a `DELETE /playbacks/{id}` that lands in between answers 500 "Could not
stop playback" and is lost. A `tone:ring` playback never ends by itself, so the tone
plays on, and the next synchronous command on the caller's channel (adding it to the
conversation bridge) waits behind it for good. Asterisk serves an app's REST requests on
the event websocket one at a time, so every call numcfg handles stalls with that one
until the caller hangs up: the soak (bench/soak.py) saw it as a 10-13 s stall in which
hundreds of calls failed. An employee who answers within milliseconds of being called
(a Local channel, an auto-answer phone) is what opens that window; so a stop refused that
way is sent again, a few milliseconds later, until Asterisk takes it. A prompt a caller
interrupts at its very start is the same race: it would play on to its end, over the
next prompt.
"""

from __future__ import annotations

import asyncio
import logging

from .client import AriClient
from .errors import AriError, AriUnavailable

log = logging.getLogger("numcfg.ari")

# The window is the few instructions between two assignments in Asterisk's channel
# thread: the first retry nearly always lands after it. The attempts bound a channel
# that is stuck for another reason (then the stop can never be taken).
STOP_RETRY_SECONDS = 0.01
STOP_ATTEMPTS = 50


def stop_refused_while_starting(exc: AriError) -> bool:
    """Asterisk's answer to a stop that came while the playback was starting: 500
    "Could not stop playback". A 404 (already over) or no answer at all is not that."""
    return (
        not isinstance(exc, AriUnavailable)
        and exc.status == 500
        and "could not stop" in exc.message.lower()
    )


async def stop_playback_surely(client: AriClient, playback_id: str) -> None:
    """Stop `playback_id`, again while Asterisk refuses because it is just starting.
    Never raises: a playback already over, or a channel gone, is fine."""
    for attempt in range(STOP_ATTEMPTS):
        try:
            await client.stop_playback(playback_id)
            return
        except AriError as exc:
            if not stop_refused_while_starting(exc):
                return
            if attempt == 0:
                log.warning(
                    "playback %s: Asterisk refused the stop while it was starting "
                    "(its res_stasis_playback race); stopping it again",
                    playback_id,
                )
        await asyncio.sleep(STOP_RETRY_SECONDS)
    log.error("playback %s: still not stopped after %d attempts", playback_id, STOP_ATTEMPTS)
