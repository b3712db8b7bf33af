"""The call-details record of SPEC section 7, filled in as the call goes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ...policy.types import Disposition


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
    crm: dict[str, Any] | None = None

    def step(self, name: str) -> None:
        self.route.append(name)

    def as_dict(self) -> dict[str, Any]:
        ended = self.ended_at or now()
        talk_start = self.answered_at
        return {
            "id": self.id,
            "number": self.number,
            "direction": self.direction,
            "caller": self.caller,
            "callee": self.callee,
            "employee": self.employee,
            "started_at": self.started_at.isoformat(),
            "answered_at": talk_start.isoformat() if talk_start else None,
            "ended_at": ended.isoformat(),
            # Talk time for answered calls, whole call otherwise (what operators bill on).
            "duration": round((ended - (talk_start or self.started_at)).total_seconds()),
            "disposition": self.disposition or Disposition.FAILED,
            "route": list(self.route),
            "recording": self.recording,
            "recording_skipped": self.recording_skipped,
            "rating": self.rating,
            "transcript": self.transcript,
            "crm": self.crm,
        }
