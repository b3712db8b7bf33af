"""What every CRM backend offers, and the values that cross the CRM boundary.

The call flow only ever sees these types: a backend turns its remote CRM's ids, user ids and
JSON into them, so routing code never learns whether it talks to Bitrix24 or the store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

EntityKind = Literal["contact", "company", "lead"]
Direction = Literal["incoming", "outgoing", "callback"]

# Failure reasons, the `reason` label of metrics.crm_failures: a small fixed set so a
# dashboard can tell "the CRM is slow" from "the CRM rejects us" from "our data is bad".
REASON_TIMEOUT = "timeout"
REASON_CONNECTION = "connection"
REASON_HTTP_5XX = "http_5xx"
REASON_HTTP_4XX = "http_4xx"
REASON_BAD_RESPONSE = "bad_response"
REASON_REMOTE_ERROR = "remote_error"
REASON_UNMAPPED = "unmapped_employee"  # a numcfg employee without a CRM user
REASON_UNEXPECTED = "unexpected"
# The CRM is up but asks us to slow down (Bitrix24 503 QUERY_LIMIT_EXCEEDED, HTTP 429), or
# our own pacing could not fit a request in its budget: not an outage.
REASON_RATE_LIMITED = "rate_limited"
# The CRM refuses our credentials (revoked webhook, missing scope, wrong auth type): it will
# go on refusing until someone changes the portal or the config, see CrmError.problem.
REASON_REFUSED = "refused"


class CrmError(Exception):
    """A CRM request failed; `reason` is one of the REASON_* constants.

    `status` and `answer` are the HTTP status and parsed JSON body when there was one, so a
    backend can read its CRM's error codes even from a 5xx. With REASON_REFUSED, `problem`
    is a short label (a metrics label, e.g. "insufficient_scope") and `fix` says in a
    sentence what an operator has to change.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        status: int | None = None,
        answer: Any = None,
        problem: str | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.answer = answer
        self.problem = problem
        self.fix = fix


@dataclass(frozen=True)
class CrmEntity:
    kind: str  # contact | company | lead
    id: str
    name: str | None
    # A numcfg employee id, never a remote user id: routing rings this employee directly.
    responsible: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LeadResult:
    """The entity a call is attached to; `created` is False when the phone was known."""

    entity: CrmEntity
    created: bool


@dataclass(frozen=True)
class CallInfo:
    """What the call flow knows when it reports a call to the CRM."""

    call_id: str
    number_id: str
    line_number: str  # the number's E.164
    direction: str  # incoming | outgoing | callback
    phone: str  # the client's E.164
    employee: str | None
    started_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "number_id": self.number_id,
            "line_number": self.line_number,
            "direction": self.direction,
            "phone": self.phone,
            "employee": self.employee,
            "started_at": self.started_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallInfo:
        return cls(
            call_id=data["call_id"],
            number_id=data["number_id"],
            line_number=data["line_number"],
            direction=data["direction"],
            phone=data["phone"],
            employee=data.get("employee"),
            started_at=datetime.fromisoformat(data["started_at"]),
        )


@dataclass(frozen=True)
class TranscriptInfo:
    """What the CRM is told with a transcript: the call, from its stored details."""

    call_id: str
    number_id: str | None
    direction: str  # incoming | outgoing | callback
    phone: str | None  # the client's number as the call details have it
    started_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "number_id": self.number_id,
            "direction": self.direction,
            "phone": self.phone,
            "started_at": self.started_at.isoformat(),
        }


class CrmBackend(Protocol):
    """One CRM. Methods raise CrmError on failure; CrmService adds timeouts and fallbacks."""

    async def lookup(self, phone: str) -> CrmEntity | None:
        """The contact, company or lead owning the E.164 `phone`, or None if unknown."""
        ...

    async def create_lead(
        self, *, phone: str, source: str, responsible: str | None, call: CallInfo
    ) -> LeadResult:
        """A lead for `phone`; an entity already owning the phone is returned instead, so
        there is at most one lead per phone."""
        ...

    async def assign_lead(self, lead_id: str, employee: str) -> None: ...

    async def call_started(
        self, call: CallInfo, *, create_crm: bool, entity: CrmEntity | None = None
    ) -> None:
        """`entity`: what lead_for_call attached the call to, so the CRM binds it there."""
        ...

    async def call_answered(self, call: CallInfo, employee: str) -> None: ...

    async def call_finished(
        self,
        call: CallInfo,
        *,
        duration: int,
        disposition: str,
        rating: int | None,
        recording_path: str | None,
    ) -> None: ...

    async def call_transcript(
        self, call: TranscriptInfo, *, entity: CrmEntity | None, text: str
    ) -> None:
        """The transcript of a call's recording (SPEC section 10), after the call; `entity`:
        what the call was attached to (its details' `crm`), when known."""
        ...

    async def close(self) -> None: ...
