"""Words shared by the call records, the API and the routing policy (SPEC section 7).

They are StrEnums so that a value compares equal to the string stored in the call
details and sent over the API ("answered" == Disposition.ANSWERED): code can switch to
the enum without a migration, and a typo in a comparison becomes an AttributeError.
"""

from __future__ import annotations

from enum import StrEnum


class Disposition(StrEnum):
    """How a call ended, once, for the call details (`disposition`) and callbacks."""

    ANSWERED = "answered"
    """An employee picked up and talked to the caller (directly or from a queue)."""

    MISSED = "missed"
    """Nobody took the call and the caller did not hang up first: every step ran out, or
    a `hangup` action ended it. A missed incoming call may get a callback."""

    ABANDONED = "abandoned"
    """The caller hung up before anyone answered (while ringing, waiting or in a menu).
    Counts as missed for callbacks."""

    VOICEMAIL = "voicemail"
    """The call reached a mailbox; set on arrival, whether or not a message was left."""

    FORWARDED = "forwarded"
    """An external number (a mobile or a `forward` target) answered through the trunk."""

    AFTER_HOURS = "after_hours"
    """The number was closed; the `after_hours` action ran, whatever it led to."""

    FAILED = "failed"
    """The call could not be handled at all: unknown or disconnected number, or a
    technical failure (a callback leg that could not be created)."""

    CALLBACK_REQUESTED = "callback_requested"
    """A queue caller pressed the virtual-hold key (SPEC section 9): the call ended, the
    caller keeps their place and is called back when it is their turn. Not missed: it
    makes no missed-call callback of its own."""


class Direction(StrEnum):
    """Who started the call (`direction` in the call details)."""

    INCOMING = "incoming"
    """A client called one of the numbers (`inbound,<number-id>`)."""

    OUTGOING = "outgoing"
    """An employee dialed out through a number's prefix (`outbound,<dialed>`)."""

    CALLBACK = "callback"
    """numcfg called a client back after a missed call (SPEC section 4 step 11) or when
    their place in a queue came up (virtual hold, SPEC section 9)."""


class Distribution(StrEnum):
    """How a queue spreads calls (`queues.<id>.distribution`)."""

    EVENLY = "evenly"  # round-robin across calls, one member at a time
    IN_ORDER = "in_order"  # always from the first member, one at a time
    ALL_AT_ONCE = "all_at_once"  # every available member at once, first to answer wins


class Workday(StrEnum):
    """An employee's workday state, as set by feature codes, the CLI or the API.
    NOT_STARTED is never stored: it is what no stored state means."""

    NOT_STARTED = "not_started"
    WORKING = "working"
    PAUSED = "paused"
    ENDED = "ended"


STORED_WORKDAYS = frozenset({Workday.WORKING, Workday.PAUSED, Workday.ENDED})


class NumberStatus(StrEnum):
    """A number's lifecycle state (SPEC section 5: `numcfg number ...`)."""

    ACTIVE = "active"
    PENDING_DISCONNECT = "pending_disconnect"  # still takes calls for 24 h (undo possible)
    DISCONNECTED = "disconnected"  # "not in service"


class CallbackStatus(StrEnum):
    """A callback job's state in the store."""

    PENDING = "pending"  # due at `due_at`
    IN_PROGRESS = "in_progress"  # claimed by a node, being tried
    DONE = "done"  # the client was reached
    FAILED = "failed"  # attempts ran out


class CrmOpStatus(StrEnum):
    """A CRM operation kept for a retry (the CRM outbox in the store)."""

    PENDING = "pending"  # retried at `due_at`
    FAILED = "failed"  # attempts ran out; an operator has to look


class TranscriptStatus(StrEnum):
    """`transcript_status` in call details (SPEC section 10), and the transcription job's
    state in the store (which adds IN_PROGRESS, shown to users as pending)."""

    PENDING = "pending"  # waiting for its turn, or for a retry
    IN_PROGRESS = "in_progress"  # a node is transcribing it (store only)
    DONE = "done"
    FAILED = "failed"  # every attempt failed
    SKIPPED_QUOTA = "skipped_quota"  # transcription.monthly_minutes was used up

    @property
    def public(self) -> TranscriptStatus:
        """What call details say: a job being worked on is still pending to its reader."""
        return TranscriptStatus.PENDING if self is TranscriptStatus.IN_PROGRESS else self
