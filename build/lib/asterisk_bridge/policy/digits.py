"""DTMF matching: is what the caller typed so far a choice, a start of one, or wrong.

Pure functions over the digit buffer, in the manner of CyCoreSystems ari `ext/`: the
media code collects digits and timeouts, these decide. Keeping the decision apart means
a menu with multi-digit options ("1", "21", "22") is proved by a table, not by a call.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum

TERMINATOR = "#"
"""The key a caller presses to say "that's all": it ends an entry without waiting."""

EXTENSION_MAX_LEN = 4
"""Extensions have at most 4 digits (SPEC section 3)."""


class MatchStatus(Enum):
    """Where a buffer stands: wait for more, act on `value`, or reject it."""

    INCOMPLETE = "incomplete"
    COMPLETE = "complete"
    INVALID = "invalid"


@dataclass(frozen=True)
class Match:
    """A matcher's verdict; `value` is the chosen option or extension when COMPLETE."""

    status: MatchStatus
    value: str | None = None


INCOMPLETE = Match(MatchStatus.INCOMPLETE)
INVALID = Match(MatchStatus.INVALID)


def _complete(value: str) -> Match:
    return Match(MatchStatus.COMPLETE, value)


def match_menu(buffer: str, options: Collection[str]) -> Match:
    """Match an IVR buffer against the menu's option keys.

    * COMPLETE (value = buffer) when the buffer is an option and no longer option starts
      with it, so "1" acts at once in a menu without "1x" options;
    * INCOMPLETE when a longer option starts with the buffer (an empty buffer included);
      the buffer may itself be an option ("2" with "2" and "21"): the caller then waits
      for the inter-digit timeout and calls `match_on_timeout`;
    * INVALID otherwise.

    A trailing "#" (when no option uses "#") means the caller is done, so the buffer
    before it is resolved as on a timeout instead of making the caller wait.
    """
    if buffer.endswith(TERMINATOR) and not any(TERMINATOR in option for option in options):
        return match_on_timeout(buffer[: -len(TERMINATOR)], options)
    if buffer and buffer in options and not _has_longer(buffer, options):
        return _complete(buffer)
    if _has_longer(buffer, options):
        return INCOMPLETE
    return INVALID


def match_on_timeout(buffer: str, options: Collection[str]) -> Match:
    """Resolve a buffer when the caller stopped typing: an option is chosen, else INVALID.

    An empty buffer is INVALID too: the first-digit timeout counts as a failed attempt
    toward the menu's `retries`, exactly like a wrong key.
    """
    if buffer and buffer in options:
        return _complete(buffer)
    return INVALID


def _has_longer(buffer: str, options: Collection[str]) -> bool:
    return any(len(option) > len(buffer) and option.startswith(buffer) for option in options)


def match_extension(
    buffer: str,
    *,
    max_len: int = EXTENSION_MAX_LEN,
    extensions: Collection[str] | None = None,
) -> Match:
    """Match digits dialed during a greeting against an extension.

    * "#" ends the entry: COMPLETE with the digits before it, INVALID if there are none;
    * `max_len` digits: COMPLETE (no extension is longer, so waiting is pointless);
    * fewer digits: INCOMPLETE (an empty buffer included);
    * anything else (letters, A-D, "*", "#" not last, too many digits): INVALID.

    With `extensions` (the known ones) the answer comes sooner: digits no extension
    starts with are INVALID at once, and an extension that no longer one extends is
    COMPLETE without waiting for `max_len` digits or "#". Whether a COMPLETE extension
    exists is still the caller's check when `extensions` is not given.
    """
    digits = buffer
    terminated = digits.endswith(TERMINATOR)
    if terminated:
        digits = digits[: -len(TERMINATOR)]
    if not (digits == "" or (digits.isascii() and digits.isdigit())) or len(digits) > max_len:
        return INVALID
    if extensions is not None:
        if terminated:
            return _complete(digits) if digits in extensions else INVALID
        if digits and digits in extensions and not _has_longer(digits, extensions):
            return _complete(digits)
        if not _has_longer(digits, extensions) and digits not in extensions:
            return INVALID
    if terminated:
        return _complete(digits) if digits else INVALID
    if len(digits) == max_len:
        return _complete(digits)
    return INCOMPLETE


def extension_on_timeout(buffer: str, *, max_len: int = EXTENSION_MAX_LEN) -> Match:
    """Resolve an extension entry when the caller stopped typing before `max_len` digits.

    Extensions may be shorter than `max_len` ("101"), so a pause completes whatever
    digits there are; an empty or malformed buffer is INVALID.
    """
    return match_extension(buffer + TERMINATOR, max_len=max_len)
