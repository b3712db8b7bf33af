"""The typed rows the store returns, and their JSON form for the API and the CLI.

Rows are frozen: a value read from the store is a fact about one moment, not a handle to
update. Datetimes are aware and in UTC; vocabularies are the StrEnums of policy/types.py.
`to_json()` (ISO 8601 strings, plain lists) is for the API and CLI edge only: the SPEC
section 6/7 shapes live here, next to the fields they describe, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asterisk_bridge.policy.types import (
    CallbackStatus,
    CrmOpStatus,
    Direction,
    Disposition,
    NumberStatus,
    TranscriptStatus,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallDetails:
    """One call's details (SPEC section 7)."""

    id: str
    number: str | None
    direction: Direction
    caller: str | None
    callee: str | None
    employee: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration: int | None
    disposition: Disposition
    route: tuple[str, ...]
    recording: Mapping[str, Any] | None
    recording_skipped: str | None
    rating: int | None
    transcript: str | None
    # pending | done | failed | skipped_quota; None: nothing to transcribe (SPEC section 10).
    transcript_status: str | None = None
    crm: Mapping[str, Any] | None
    transfers: tuple[Mapping[str, Any], ...] = ()
    # What storage.keep_days removed: {"recording" | "voicemail" | "transcript": ISO time}.
    purged: Mapping[str, str] | None = None
    # A callback's record: the id of the call it calls back (SPEC section 9); else None.
    callback_of: str | None = None

    def to_json(self) -> dict[str, Any]:
        # Key order is the SPEC's: API clients and `numcfg calls --json` read it as shown.
        return {
            "id": self.id,
            "number": self.number,
            "direction": self.direction.value,
            "caller": self.caller,
            "callee": self.callee,
            "employee": self.employee,
            "started_at": iso(self.started_at),
            "answered_at": iso(self.answered_at),
            "ended_at": iso(self.ended_at),
            "duration": self.duration,
            "disposition": self.disposition.value,
            "route": list(self.route),
            "recording": _plain(self.recording),
            "recording_skipped": self.recording_skipped,
            "rating": self.rating,
            "transcript": self.transcript,
            "transcript_status": self.transcript_status,
            "crm": _plain(self.crm),
            "transfers": [_plain(entry) for entry in self.transfers],
            "purged": _plain(self.purged),
            "callback_of": self.callback_of,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallDetails:
        """The inverse of to_json (the spool keeps details in their JSON form)."""
        return cls(
            id=str(data["id"]),
            number=data["number"],
            direction=Direction(data["direction"]),
            caller=data["caller"],
            callee=data["callee"],
            employee=data["employee"],
            started_at=_instant(data["started_at"]) or datetime.now(UTC),
            answered_at=_instant(data["answered_at"]),
            ended_at=_instant(data["ended_at"]),
            duration=data["duration"],
            disposition=Disposition(data["disposition"]),
            route=tuple(data["route"]),
            recording=data["recording"],
            recording_skipped=data["recording_skipped"],
            rating=data["rating"],
            transcript=data["transcript"],
            crm=data["crm"],
            transfers=tuple(data.get("transfers") or ()),
            # Spooled by a release without transcription: none to report.
            transcript_status=data.get("transcript_status"),
            purged=data.get("purged"),
            # Spooled by a release without virtual hold: a callback of nothing known.
            callback_of=data.get("callback_of"),
        )


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackJob:
    """A callback to a client, tried up to `attempts` times `delay` seconds apart."""

    id: str
    number: str
    phone: str
    reason: str
    attempts: int
    attempts_made: int
    delay: float
    status: CallbackStatus
    due_at: datetime
    node: str | None
    claimed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    # Virtual hold (SPEC section 9): the queue whose line this job keeps a place in, and
    # when its caller joined that line; None for a plain callback.
    queue: str | None = None
    joined_at: datetime | None = None
    call_id: str | None = None  # the call this job calls back (None: requested by hand)
    # While in progress: `node` holds the job until then (renewed as it works), after which
    # another node may take it over. None: not claimed, or claimed before leases existed.
    lease_until: datetime | None = None

    @property
    def holds_place(self) -> bool:
        """A kept place whose first attempt still waits for its turn in the line."""
        return (
            self.queue is not None
            and self.joined_at is not None
            and self.attempts_made == 0
            and self.status is CallbackStatus.PENDING
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "phone": self.phone,
            "reason": self.reason,
            "attempts": self.attempts,
            "attempts_made": self.attempts_made,
            "delay": self.delay,
            "status": self.status.value,
            "due_at": iso(self.due_at),
            "node": self.node,
            "claimed_at": iso(self.claimed_at),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "queue": self.queue,
            "joined_at": iso(self.joined_at),
            "call_id": self.call_id,
            "lease_until": iso(self.lease_until),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptionJob:
    """The transcription of one call's recording (SPEC section 10)."""

    call_id: str
    number: str | None
    file: str  # the recording's name in storage.recordings
    seconds: float
    status: TranscriptStatus
    attempts_made: int
    due_at: datetime
    node: str | None
    claimed_at: datetime | None
    charged_period: str | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    lease_until: datetime | None = None  # as CallbackJob.lease_until


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberState:
    """A number's stored lifecycle state; `changed_at` None: never changed (active)."""

    number: str
    status: NumberStatus
    changed_at: datetime | None
    undo_token: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    """A builtin-CRM contact (or company), one per phone."""

    id: str
    name: str
    phone: str
    responsible: str | None
    kind: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "phone": self.phone,
            "responsible": self.responsible,
            "kind": self.kind,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Lead:
    """A builtin-CRM lead, one per phone."""

    id: str
    phone: str
    source: str
    responsible: str | None
    call_id: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "phone": self.phone,
            "source": self.source,
            "responsible": self.responsible,
            "call_id": self.call_id,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CrmTokens:
    """A CRM local application's OAuth tokens for one portal."""

    portal: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime
    endpoint: str  # the portal's REST URL, e.g. https://yourcompany.bitrix24.com/rest/
    application_token: str | None = field(default=None, repr=False)
    user_id: str | None = None  # who installed the application


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenCrmCall:
    """A call registered in the CRM's telephony journal (Bitrix24 CALL_ID), not finished."""

    call_id: str
    remote_id: str
    node: str
    info: Mapping[str, Any]
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingCrmOp:
    """A CRM operation that failed during a call, kept for a later retry."""

    id: str
    kind: str
    payload: Mapping[str, Any]
    status: CrmOpStatus
    attempts: int
    last_error: str | None
    due_at: datetime
    claimed_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigVersion:
    """A configuration published with `numcfg apply`; the highest version is live."""

    version: int
    text: str
    published_at: datetime


def iso(value: datetime | None) -> str | None:
    """The JSON form of a stored instant: ISO 8601 in UTC (`...+00:00`)."""
    return None if value is None else value.astimezone(UTC).isoformat()


def _plain(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)
