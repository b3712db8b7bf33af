"""Post-call rating: after the employee hangs up first, the caller rates 1 to 5."""

from __future__ import annotations

import logging

from ...ari.media import Status, wait_digits
from ...policy.rating import parse_rating
from ..core.call import Call

log = logging.getLogger("numcfg.calls")

# Long enough to find the keypad again after taking the phone from the ear.
RATING_DIGIT_SECONDS = 6.0
# One retry after a digit outside 1-5, then the caller is let go.
RATING_ATTEMPTS = 2
# A rating prompt that never starts is requested this many times in all.
RATING_PROMPT_ATTEMPTS = 3
# Digits are single keys: a short gap ends the entry.
RATING_INTER_DIGIT_SECONDS = 0.1


async def ask_rating(call: Call) -> None:
    call.inbox.take_digits()  # digits pressed during the conversation are not a rating
    for _attempt in range(RATING_ATTEMPTS):
        # Asked right after the employee's leg left the bridge: Asterisk may drop a
        # playback requested while the caller is still being pulled out of it, so a
        # prompt that never starts is asked for again instead of losing the rating.
        result = await call.play_prompt(
            "rating", interrupt_on_digit=True, start_attempts=RATING_PROMPT_ATTEMPTS
        )
        if result.status is Status.HANGUP:
            return
        status, digits = await wait_digits(
            call.inbox,
            first_timeout=RATING_DIGIT_SECONDS,
            inter_timeout=RATING_INTER_DIGIT_SECONDS,
            done=lambda buffer: Status.FINISHED,
        )
        if status is Status.HANGUP:
            return
        rating = parse_rating(digits[:1]) if digits else None
        if rating is not None:
            call.record.rating = rating
            call.step(f"rating:{rating}")
            await call.play_prompt("rating-thanks")
            return
        if not digits:
            return  # silence: the caller does not want to rate
        await call.play_prompt("ivr-invalid")
