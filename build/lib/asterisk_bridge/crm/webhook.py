"""A CRM of the operator's own behind one URL: numcfg POSTs signed JSON events to it.

Every request is `{"event": ..., ...}` with header
`X-Numcfg-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed by crm.secret>`; the
event shapes are documented in README.md beside this file. Only `lookup` and `lead.create`
need an answer body; the others only need a 2xx.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from .base import (
    REASON_BAD_RESPONSE,
    REASON_HTTP_4XX,
    CallInfo,
    CrmEntity,
    CrmError,
    LeadResult,
    TranscriptInfo,
)
from .http import JsonClient, dumps

SIGNATURE_HEADER = "X-Numcfg-Signature"
EVENT_HEADER = "X-Numcfg-Event"
ENTITY_KINDS = frozenset({"contact", "company", "lead"})


def sign(secret: str, body: bytes) -> str:
    """The X-Numcfg-Signature value for `body`; receivers compare it in constant time."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookCrm:
    def __init__(self, *, url: str, secret: str | None, timeout: float) -> None:
        self._url = url
        self._secret = secret
        self._http = JsonClient(timeout=timeout)

    async def send(self, event: str, fields: dict[str, Any]) -> Any:
        """POST one event; returns the parsed answer (None for an empty body)."""
        payload = {"event": event, "sent_at": datetime.now(UTC).isoformat(), **fields}
        body = dumps(payload)
        headers = {EVENT_HEADER: event}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        status, answer = await self._http.post(self._url, body, headers=headers)
        if status >= 300:
            raise CrmError(REASON_HTTP_4XX, f"webhook {event}: HTTP {status}")
        return answer

    async def lookup(self, phone: str) -> CrmEntity | None:
        answer = await self.send("lookup", {"phone": phone})
        if not isinstance(answer, dict) or "entity" not in answer:
            raise CrmError(REASON_BAD_RESPONSE, "webhook lookup: answer has no 'entity' key")
        return _entity(answer["entity"], "lookup")

    async def create_lead(
        self, *, phone: str, source: str, responsible: str | None, call: CallInfo
    ) -> LeadResult:
        answer = await self.send(
            "lead.create",
            {"phone": phone, "source": source, "responsible": responsible, "call": call.as_json()},
        )
        if not isinstance(answer, dict):
            raise CrmError(REASON_BAD_RESPONSE, "webhook lead.create: answer is not an object")
        entity = _entity(answer.get("entity"), "lead.create")
        if entity is None or not isinstance(answer.get("created"), bool):
            raise CrmError(
                REASON_BAD_RESPONSE, "webhook lead.create: needs 'entity' and boolean 'created'"
            )
        return LeadResult(entity=entity, created=answer["created"])

    async def assign_lead(self, lead_id: str, employee: str) -> None:
        await self.send("lead.assign", {"lead_id": lead_id, "employee": employee})

    async def call_started(
        self, call: CallInfo, *, create_crm: bool, entity: CrmEntity | None = None
    ) -> None:
        await self.send(
            "call.started",
            {
                "call": call.as_json(),
                "create_crm": create_crm,
                "entity": None if entity is None else entity.as_json(),
            },
        )

    async def call_answered(self, call: CallInfo, employee: str) -> None:
        await self.send("call.answered", {"call": call.as_json(), "employee": employee})

    async def call_finished(
        self,
        call: CallInfo,
        *,
        duration: int,
        disposition: str,
        rating: int | None,
        recording_path: str | None,
    ) -> None:
        await self.send(
            "call.finished",
            {
                "call": call.as_json(),
                "duration": duration,
                "disposition": disposition,
                "rating": rating,
                "recording": recording_path,
            },
        )

    async def call_transcript(
        self, call: TranscriptInfo, *, entity: CrmEntity | None, text: str
    ) -> None:
        await self.send(
            "call.transcript",
            {
                "call": call.as_json(),
                "entity": None if entity is None else entity.as_json(),
                "text": text,
            },
        )

    async def close(self) -> None:
        await self._http.close()


def _entity(data: Any, event: str) -> CrmEntity | None:
    if data is None:
        return None
    if (
        not isinstance(data, dict)
        or data.get("kind") not in ENTITY_KINDS
        or not isinstance(data.get("id"), str | int)
        or isinstance(data.get("id"), bool)
    ):
        raise CrmError(
            REASON_BAD_RESPONSE,
            f"webhook {event}: entity needs kind (contact|company|lead) and id",
        )
    name, responsible = data.get("name"), data.get("responsible")
    return CrmEntity(
        kind=data["kind"],
        id=str(data["id"]),
        name=name if isinstance(name, str) else None,
        responsible=responsible if isinstance(responsible, str) else None,
    )
