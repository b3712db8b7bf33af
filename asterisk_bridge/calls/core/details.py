"""The call-details record of SPEC section 7, filled in as the call goes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ...policy.types import Direction, Disposition
from ...store.rows import CallDetails


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(kw_only=True)
class CallRecord:
    id: str
    number: str | None
    direction: str
    caller: str
    callee: str
    started_at: datetime = field(default_factory=now)
    employee: str | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    disposition: str | None = None
    route: list[str] = field(default_factory=list)
    recording: dict[str, Any] | None = None
    recording_skipped: str | None = None
    rating: int | None = None
    transcript: str | None = None
    transcript_status: str | None = None  # "pending" once a recording is kept to transcribe
    crm: dict[str, Any] | None = None
    # SPEC section 8: one entry per transfer, in order ({from, to, mode, at, result, via}).
    transfers: list[dict[str, Any]] = field(default_factory=list)
    callback_of: str | None = None  # a callback's record: the call it calls back

    def step(self, name: str) -> None:
        self.route.append(name)

    def details(self) -> CallDetails:
        """The record as the store keeps it; a call not ended yet ends now (so far)."""
        ended = self.ended_at or now()
        talk_start = self.answered_at
        return CallDetails(
            id=self.id,
            number=self.number,
            direction=Direction(self.direction),
            caller=self.caller,
            callee=self.callee,
            employee=self.employee,
            started_at=self.started_at,
            answered_at=talk_start,
            ended_at=ended,
            # Talk time for answered calls, whole call otherwise (what operators bill on).
            duration=round((ended - (talk_start or self.started_at)).total_seconds()),
            disposition=Disposition(self.disposition or Disposition.FAILED),
            route=tuple(self.route),
            recording=self.recording,
            recording_skipped=self.recording_skipped,
            rating=self.rating,
            transcript=self.transcript,
            transcript_status=self.transcript_status,
            crm=self.crm,
            transfers=tuple(dict(entry) for entry in self.transfers),
            callback_of=self.callback_of,
        )
