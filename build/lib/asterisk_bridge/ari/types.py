"""ARI's vocabularies as types: dial statuses, channel states and what a hangup cause means.

Call flows `match` on these instead of comparing the strings and Q.850 numbers Asterisk
sends, so a misspelt status is an AttributeError at import, not a branch never taken.
Re-exported by events.py; import them from there.
"""

from __future__ import annotations

from enum import Enum, StrEnum


class TransferProgress(StrEnum):
    """`states` of POST /channels/{id}/transfer_progress: what the REFERring phone is
    told (a NOTIFY with a sipfrag: 100 Trying, 200 OK, 503, 603)."""

    PROGRESS = "channel_progress"
    ANSWERED = "channel_answered"
    UNAVAILABLE = "channel_unavailable"
    DECLINED = "channel_declined"


class DialStatus(StrEnum):
    """`dialstatus` of a Dial event (app_dial's DIALSTATUS plus the progress values).

    A StrEnum, so `DialStatus.BUSY == "BUSY"` still holds for code that compares strings.
    The first Dial event of a dial carries an empty status; it and anything Asterisk adds
    later (DONTCALL, TORTURE, PROCEEDING...) parse as UNKNOWN.
    """

    RINGING = "RINGING"
    PROGRESS = "PROGRESS"
    ANSWER = "ANSWER"
    BUSY = "BUSY"
    NOANSWER = "NOANSWER"
    CANCEL = "CANCEL"
    CHANUNAVAIL = "CHANUNAVAIL"
    CONGESTION = "CONGESTION"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, text: str | None) -> DialStatus:
        try:
            return cls((text or "").strip().upper())
        except ValueError:
            return cls.UNKNOWN


class ChannelState(StrEnum):
    """`state` of an ARI Channel: the strings of Asterisk's ast_state2str().

    The rest-api model (channels.json) spells the reserved state "Rsrved", but Asterisk
    22.10 sends "Rsrvd" (checked in the rig's binary); parse() accepts both. "Mute" is
    not in the model either but ast_state2str() can return it.
    """

    DOWN = "Down"
    RSRVD = "Rsrvd"
    OFFHOOK = "OffHook"
    DIALING = "Dialing"
    RING = "Ring"
    RINGING = "Ringing"
    UP = "Up"
    BUSY = "Busy"
    DIALING_OFFHOOK = "Dialing Offhook"
    PRERING = "Pre-ring"
    MUTE = "Mute"
    UNKNOWN = "Unknown"

    @classmethod
    def parse(cls, text: str | None) -> ChannelState:
        value = (text or "").strip()
        if value == "Rsrved":
            return cls.RSRVD
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


class HangupKind(Enum):
    """What a call or leg's end means to a call flow, whatever the signalling said."""

    NORMAL = "normal"  # cleared normally: answered and hung up, or hung up by us
    BUSY = "busy"  # the callee is busy or refused the call: offer voicemail, not a retry
    NO_ANSWER = "no_answer"  # it rang (or could have) and nobody picked up
    UNAVAILABLE = "unavailable"  # could not be reached at all: wrong number, network, offline


# Q.850 causes (Asterisk's AST_CAUSE_*, in ChannelDestroyed / ChannelHangupRequest `cause`).
# A cause in no set below is UNAVAILABLE: every unlisted cause from 32 up is a resource,
# service or protocol failure (Q.850 classes 2 to 7), and the unlisted ones under 32
# (number changed, invalid format, facility rejected...) also mean "not reachable".
NORMAL_CAUSES = frozenset(
    {
        0,  # NOTDEFINED: no cause recorded (e.g. some Local channel halves); nothing failed
        16,  # NORMAL_CLEARING: a hangup, including ours via DELETE /channels/{id}
        26,  # ANSWERED_ELSEWHERE: another leg of the same ring group won
        31,  # NORMAL_UNSPECIFIED
    }
)
BUSY_CAUSES = frozenset(
    {
        17,  # USER_BUSY (SIP 486, 600)
        # CALL_REJECTED (SIP 603 Decline, 403): the callee pressed "decline". For the
        # caller it is the same as busy (somebody is there but will not talk now), and
        # unlike no-answer a retry right away will not help.
        21,
    }
)
NO_ANSWER_CAUSES = frozenset(
    {
        18,  # NO_USER_RESPONSE (SIP 408): the phone never answered the INVITE
        19,  # NO_ANSWER (SIP 480, and Asterisk's dial timeout): it rang, nobody picked up
    }
)
# Listed for the reader and the tests; the default gives the same answer.
UNAVAILABLE_CAUSES = frozenset(
    {
        1,  # UNALLOCATED (SIP 404, 604): no such number
        3,  # NO_ROUTE_DESTINATION
        20,  # SUBSCRIBER_ABSENT: mobile off or out of coverage
        27,  # DESTINATION_OUT_OF_ORDER (SIP 502)
        34,  # NORMAL_CIRCUIT_CONGESTION (SIP 503): congestion is "try elsewhere", not busy
        38,  # NETWORK_OUT_OF_ORDER
        41,  # NORMAL_TEMPORARY_FAILURE
        42,  # SWITCH_CONGESTION
        44,  # REQUESTED_CHAN_UNAVAIL
        58,  # BEARERCAPABILITY_NOTAVAIL (SIP 488: no common codec)
        102,  # RECOVERY_ON_TIMER_EXPIRE (SIP 504)
        127,  # INTERWORKING
    }
)


def hangup_kind(cause: int) -> HangupKind:
    """Classify a Q.850 hangup cause (see the cause sets above for the mapping and why)."""
    if cause in NORMAL_CAUSES:
        return HangupKind.NORMAL
    if cause in BUSY_CAUSES:
        return HangupKind.BUSY
    if cause in NO_ANSWER_CAUSES:
        return HangupKind.NO_ANSWER
    return HangupKind.UNAVAILABLE


_DIAL_KINDS: dict[DialStatus, HangupKind] = {
    DialStatus.BUSY: HangupKind.BUSY,
    DialStatus.NOANSWER: HangupKind.NO_ANSWER,
    # The dial was abandoned before an answer (our hangup, or another leg won): for this
    # leg that is "nobody answered".
    DialStatus.CANCEL: HangupKind.NO_ANSWER,
    DialStatus.CHANUNAVAIL: HangupKind.UNAVAILABLE,
    # Same meaning as cause 34 above: the network, not the callee, refused.
    DialStatus.CONGESTION: HangupKind.UNAVAILABLE,
}


def dial_kind(status: DialStatus) -> HangupKind | None:
    """How a Dial event ended the leg, or None while it has not ended in failure.

    None for RINGING, PROGRESS and ANSWER, and for UNKNOWN (the empty status of the first
    Dial event, or a value this module does not know): a leg that really ended also sends
    ChannelDestroyed, whose cause hangup_kind() classifies.
    """
    return _DIAL_KINDS.get(status)
