"""Bitrix24 through an inbound webhook (https://portal/rest/<user>/<code>/<method>).

Only documented REST methods are used: crm.duplicate.findbycomm and crm.<entity>.get for
lookups, crm.lead.add / crm.lead.update for leads, telephony.externalcall.register /
finish / attachRecord for the call journal, and crm.timeline.comment.add for transcripts.
Bitrix24 answers {"result": ...} on success and {"error": ..., "error_description": ...}
(usually with HTTP 400) on failure.

Every request takes a token from a client-side bucket shaped like the portal's (ratelimit.py)
and is retried with backoff when the portal still says "slow down" (503
QUERY_LIMIT_EXCEEDED, 429). A refused webhook is reported as REASON_REFUSED with what to fix,
which CrmService turns into its `problem`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any

from yarl import URL

from asterisk_bridge.config.schema import Employee

from .base import (
    REASON_BAD_RESPONSE,
    REASON_HTTP_4XX,
    REASON_RATE_LIMITED,
    REASON_REFUSED,
    REASON_REMOTE_ERROR,
    REASON_UNMAPPED,
    CallInfo,
    CrmEntity,
    CrmError,
    LeadResult,
    TranscriptInfo,
)
from .http import JsonClient, dumps
from .ratelimit import Backoff, TokenBucket, current_budget

log = logging.getLogger("numcfg.crm.bitrix24")

# telephony.externalcall.register TYPE values.
CALL_TYPES = {"outgoing": 1, "incoming": 2, "callback": 4}
# telephony.externalcall.finish STATUS_CODE per SPEC section 7 disposition. A caller who
# hangs up before an answer cancelled the call (603-S); numcfg refusing it is a failure.
STATUS_CODES = {
    "answered": "200",
    "forwarded": "200",
    "missed": "304",
    "voicemail": "304",
    "after_hours": "304",
    "abandoned": "603-S",
    # Virtual hold: nobody talked to the caller yet; the callback is journalled as its own
    # call (TYPE 4).
    "callback_requested": "304",
    "declined": "603",
    "failed": "OTHER",
}
# Which entity a known phone resolves to when it is on several: a contact is a person we
# work with, a company the organisation, a lead only a prospect.
LOOKUP_ORDER = (("CONTACT", "contact"), ("COMPANY", "company"), ("LEAD", "lead"))
# Uploading a recording is base64 in a JSON body: a 10-minute WAV is ~10 MB, which takes
# longer than a routing lookup may. It runs after the call, so it gets its own budget.
ATTACH_RECORD_TIMEOUT_S = 60.0
# Bitrix24 refuses recordings in any other format (telephony.externalCall.attachRecord).
RECORD_EXTENSIONS = (".mp3", ".wav")
# The portal's leaky bucket on cloud plans (apidocs.bitrix24.com/limits.html); crm.rate_limit
# overrides it, e.g. for Enterprise plans (5/s, bursts of 250).
DEFAULT_PER_SECOND = 2.0
DEFAULT_BURST = 50
# "Slow down" answers: the 503's error code, and the 429 of OPERATION_TIME_LIMIT (a method
# used more than 480 s in 10 minutes), both retried with backoff.
QUERY_LIMIT_EXCEEDED = "QUERY_LIMIT_EXCEEDED"
HTTP_TOO_MANY_REQUESTS = 429
# Error codes meaning "these credentials will not do", keyed upper-case (Bitrix24 writes
# some lower-case): (problem label, what an operator has to fix). Retrying cannot help.
REFUSALS: dict[str, tuple[str, str]] = {
    "WRONG_AUTH_TYPE": (
        "wrong_auth_type",
        "the portal refuses {method} through an inbound webhook (WRONG_AUTH_TYPE): on this "
        "portal the call journal needs a local application, which numcfg does not offer "
        "yet; lookups and leads still work",
    ),
    "INSUFFICIENT_SCOPE": (
        "insufficient_scope",
        "the webhook lacks the {scope} scope that {method} needs: add it to the inbound "
        "webhook in the portal (Developer resources, Other, Inbound webhook)",
    ),
    "EXPIRED_TOKEN": (
        "expired_token",
        "the portal says the credentials for {method} have expired (expired_token): create "
        "a new inbound webhook and put its URL in crm.url",
    ),
    "INVALID_TOKEN": (
        "invalid_token",
        "the portal does not accept the webhook's code (invalid_token): check crm.url, or "
        "create a new inbound webhook and put its URL there",
    ),
    "INVALID_CREDENTIALS": (
        "invalid_credentials",
        "the portal refuses the webhook's credentials for {method} (INVALID_CREDENTIALS): "
        "the webhook's user may have been dismissed or lost access; check that user and "
        "crm.url",
    ),
    "NO_AUTH_FOUND": (
        "no_auth_found",
        "the portal knows no such webhook (NO_AUTH_FOUND): it was deleted or crm.url is "
        "wrong; create an inbound webhook and put its URL in crm.url",
    ),
}
# A 401/403 without one of the codes above is still a refusal, just a less specific one.
HTTP_REFUSALS: dict[int, tuple[str, str]] = {
    401: (
        "http_401",
        "the portal refuses the webhook (HTTP 401) for {method}: check crm.url",
    ),
    403: (
        "http_403",
        "the portal forbids {method} (HTTP 403): check the webhook user's rights and that "
        "the portal's plan includes REST",
    ),
}


class Bitrix24Crm:
    def __init__(
        self,
        *,
        url: str,
        timeout: float,
        employees: Callable[[], Mapping[str, Employee]],
        rate_limit: TokenBucket | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        """`employees` is read at each use, so a config reload changes the user mapping.
        `rate_limit` paces requests (default: the cloud plans' 2/s, bursts of 50)."""
        self._base = url if url.endswith("/") else url + "/"
        self._http = JsonClient(timeout=timeout)
        self._employees = employees
        self.rate_limit = rate_limit or TokenBucket(
            per_second=DEFAULT_PER_SECOND, burst=DEFAULT_BURST
        )
        self._backoff = backoff or Backoff()
        # The webhook's owner (/rest/<user>/<code>/) registers calls nobody answered.
        self.default_user_id = _webhook_user(self._base)
        # numcfg call id -> Bitrix24 CALL_ID (from register), and the answering employee.
        self._calls: dict[str, str] = {}
        self._answered_by: dict[str, str] = {}
        # Calls whose register failed: CrmService logged that failure already (or, for a
        # refused webhook, the problem once), so their finish is skipped without a warning.
        self._unregistered: set[str] = set()

    # -- REST ------------------------------------------------------------------------------

    async def call(
        self, method: str, params: Mapping[str, Any], *, timeout: float | None = None
    ) -> Any:
        """The `result` of a REST method; CrmError when Bitrix24 reports an error.

        Waits for a rate-limit token and retries "slow down" answers, both within the
        budget of the CrmService operation running (none outside one: wait as needed).
        """
        budget = current_budget()
        deadline = None if budget is None else budget.deadline
        urgent = budget is not None and budget.urgent
        body = dumps(params)
        retry = 0
        while True:
            await self.rate_limit.acquire(deadline=deadline, urgent=urgent)
            try:
                return await self._call_once(method, body, timeout)
            except CrmError as exc:
                if exc.reason != REASON_RATE_LIMITED:
                    raise
                log.debug("%s: %s; retrying", method, exc)
                self.rate_limit.drain()
                await self._backoff.wait(retry, deadline=deadline, why=str(exc))
                retry += 1

    async def _call_once(self, method: str, body: bytes, timeout: float | None) -> Any:
        try:
            status, answer = await self._http.post(self._base + method, body, timeout=timeout)
        except CrmError as exc:
            # A 503 or a non-JSON 401/403 arrives as an error; it may still mean "slow
            # down" or "refused" rather than "down".
            special = _limit_or_refusal(method, exc.status, exc.answer)
            if special is not None:
                raise special from exc
            raise
        special = _limit_or_refusal(method, status, answer)
        if special is not None:
            raise special
        if isinstance(answer, dict) and "error" in answer:
            raise CrmError(
                REASON_REMOTE_ERROR,
                f"{method}: {answer.get('error')}: {answer.get('error_description', '')}",
            )
        if status >= 400:
            raise CrmError(REASON_HTTP_4XX, f"{method}: HTTP {status}")
        if not isinstance(answer, dict) or "result" not in answer:
            raise CrmError(REASON_BAD_RESPONSE, f"{method}: answer without 'result'")
        return answer["result"]

    # -- lookups and leads -----------------------------------------------------------------

    async def lookup(self, phone: str) -> CrmEntity | None:
        found = await self.call("crm.duplicate.findbycomm", {"type": "PHONE", "values": [phone]})
        # Nothing found is an empty PHP array, i.e. JSON [] rather than {}.
        if not found:
            return None
        if not isinstance(found, dict):
            raise CrmError(REASON_BAD_RESPONSE, "crm.duplicate.findbycomm: unexpected result")
        for remote_kind, kind in LOOKUP_ORDER:
            ids = found.get(remote_kind) or []
            if ids:
                return await self._entity(kind, str(ids[0]))
        return None

    async def _entity(self, kind: str, entity_id: str) -> CrmEntity:
        fields = await self.call(f"crm.{kind}.get", {"id": entity_id})
        if not isinstance(fields, dict):
            raise CrmError(REASON_BAD_RESPONSE, f"crm.{kind}.get: unexpected result")
        return CrmEntity(
            kind=kind,
            id=entity_id,
            name=_display_name(kind, fields),
            responsible=self.employee_for_user(fields.get("ASSIGNED_BY_ID")),
        )

    async def create_lead(
        self, *, phone: str, source: str, responsible: str | None, call: CallInfo
    ) -> LeadResult:
        # Bitrix24 itself allows duplicates; checking first keeps one lead per phone.
        existing = await self.lookup(phone)
        if existing is not None:
            return LeadResult(entity=existing, created=False)
        title = f"Call from {phone}"
        fields: dict[str, Any] = {
            "TITLE": title,
            "PHONE": [{"VALUE": phone, "VALUE_TYPE": "WORK"}],
            "SOURCE_ID": source,
        }
        user_id = self.user_for_employee(responsible)
        if user_id is not None:
            fields["ASSIGNED_BY_ID"] = user_id
        lead_id = await self.call("crm.lead.add", {"fields": fields})
        if isinstance(lead_id, bool) or not isinstance(lead_id, int | str) or not lead_id:
            raise CrmError(REASON_BAD_RESPONSE, "crm.lead.add: no lead id in the answer")
        user_known = user_id is not None
        entity = CrmEntity(
            kind="lead",
            id=str(lead_id),
            name=title,
            responsible=responsible if user_known else None,
        )
        return LeadResult(entity=entity, created=True)

    async def assign_lead(self, lead_id: str, employee: str) -> None:
        user_id = self.user_for_employee(employee)
        if user_id is None:
            raise CrmError(REASON_UNMAPPED, f"employee {employee!r} has no crm_user_id")
        await self.call("crm.lead.update", {"id": lead_id, "fields": {"ASSIGNED_BY_ID": user_id}})

    # -- call journal ----------------------------------------------------------------------

    async def call_started(
        self, call: CallInfo, *, create_crm: bool, entity: CrmEntity | None = None
    ) -> None:
        params: dict[str, Any] = {
            "USER_ID": self.user_for_employee(call.employee) or self.default_user_id,
            "PHONE_NUMBER": call.phone,
            "LINE_NUMBER": call.line_number,
            "TYPE": CALL_TYPES.get(call.direction, CALL_TYPES["incoming"]),
            "CALL_START_DATE": call.started_at.isoformat(),
            "CRM_CREATE": 1 if create_crm else 0,
            "SHOW": 0,
            # Without it, Bitrix24 hands back the CALL_ID of a call registered with the same
            # phone, type and user in the last 30 minutes, merging two real calls.
            "EXTERNAL_CALL_ID": call.call_id,
        }
        if entity is not None:
            params["CRM_ENTITY_TYPE"] = entity.kind.upper()
            params["CRM_ENTITY_ID"] = entity.id
        self._unregistered.add(call.call_id)
        result = await self.call("telephony.externalcall.register", params)
        if not isinstance(result, dict) or not result.get("CALL_ID"):
            raise CrmError(REASON_BAD_RESPONSE, "telephony.externalcall.register: no CALL_ID")
        self._calls[call.call_id] = str(result["CALL_ID"])
        self._unregistered.discard(call.call_id)

    async def call_answered(self, call: CallInfo, employee: str) -> None:
        # Bitrix24 has no "answered" method; finish reports who took the call.
        self._answered_by[call.call_id] = employee

    async def call_finished(
        self,
        call: CallInfo,
        *,
        duration: int,
        disposition: str,
        rating: int | None,
        recording_path: str | None,
    ) -> None:
        employee = self._answered_by.pop(call.call_id, None) or call.employee
        remote_id = self._calls.pop(call.call_id, None)
        failed_register = call.call_id in self._unregistered
        self._unregistered.discard(call.call_id)
        if remote_id is None:
            # Registration failed (already reported) or happened before a restart.
            (log.debug if failed_register else log.warning)(
                "call %s was never registered in Bitrix24; not finishing it", call.call_id
            )
            return
        params: dict[str, Any] = {
            "CALL_ID": remote_id,
            "USER_ID": self.user_for_employee(employee) or self.default_user_id,
            "DURATION": max(0, int(duration)),
            "STATUS_CODE": STATUS_CODES.get(disposition, "OTHER"),
        }
        if rating is not None:
            params["VOTE"] = rating
        await self.call("telephony.externalcall.finish", params)
        if recording_path:
            await self._attach_record(remote_id, Path(recording_path))

    async def _attach_record(self, remote_id: str, path: Path) -> None:
        if path.suffix.lower() not in RECORD_EXTENSIONS:
            log.warning("recording %s is not mp3 or wav; Bitrix24 would refuse it", path.name)
            return
        content = await asyncio.to_thread(path.read_bytes)
        params = {
            "CALL_ID": remote_id,
            "FILENAME": path.name,
            "FILE_CONTENT": base64.b64encode(content).decode("ascii"),
        }
        await self.call(
            "telephony.externalCall.attachRecord", params, timeout=ATTACH_RECORD_TIMEOUT_S
        )

    async def call_transcript(
        self, call: TranscriptInfo, *, entity: CrmEntity | None, text: str
    ) -> None:
        """A comment on the timeline of the client's entity (crm.timeline.comment.add)."""
        if entity is None and call.phone:
            entity = await self.lookup(call.phone)
        if entity is None:
            log.info("call %s: no CRM entity for its transcript; not sent", call.call_id)
            return
        when = call.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        fields = {
            # The documented types: an integer id, the entity type in lower case.
            "ENTITY_ID": int(entity.id) if entity.id.isdigit() else entity.id,
            "ENTITY_TYPE": entity.kind,
            "COMMENT": f"Transcript of the {call.direction} call of {when} "
            f"({call.phone or 'unknown number'}):\n{text}",
        }
        # "fields" in lower case: the only spelling the portal accepts since crm 23.100.
        await self.call("crm.timeline.comment.add", {"fields": fields})

    async def close(self) -> None:
        await self._http.close()

    # -- user mapping ----------------------------------------------------------------------

    def employee_for_user(self, user_id: Any) -> str | None:
        """The numcfg employee whose `crm_user_id` is this Bitrix24 user, or None."""
        if user_id is None or user_id == "":
            return None
        wanted = str(user_id)
        for employee_id, employee in self._employees().items():
            if employee.crm_user_id == wanted:
                return employee_id
        return None

    def user_for_employee(self, employee: str | None) -> str | None:
        if employee is None:
            return None
        found = self._employees().get(employee)
        return None if found is None else found.crm_user_id


def _limit_or_refusal(method: str, status: int | None, answer: Any) -> CrmError | None:
    """REASON_RATE_LIMITED or REASON_REFUSED for answers that mean so; None otherwise."""
    code = answer.get("error") if isinstance(answer, dict) else None
    code = str(code) if code else None
    if code == QUERY_LIMIT_EXCEEDED or status == HTTP_TOO_MANY_REQUESTS:
        return CrmError(
            REASON_RATE_LIMITED,
            f"{method}: {code or f'HTTP {status}'}: the portal's request limit",
            status=status,
            answer=answer,
        )
    refusal = REFUSALS.get(code.upper()) if code else None
    if refusal is None and status is not None:
        refusal = HTTP_REFUSALS.get(status)
    if refusal is None:
        return None
    problem, fix = refusal
    description = answer.get("error_description", "") if isinstance(answer, dict) else ""
    return CrmError(
        REASON_REFUSED,
        f"{method}: {code or f'HTTP {status}'}: {description}".rstrip(": "),
        status=status,
        answer=answer,
        problem=problem,
        fix=fix.format(method=method, scope=_scope(method)),
    )


def _scope(method: str) -> str:
    # The scope a webhook needs is the method's first segment: crm.*, telephony.*, user.*.
    return method.split(".", 1)[0].lower()


def _webhook_user(base: str) -> str | None:
    parts = [part for part in URL(base).path.split("/") if part]
    # .../rest/<user>/<code>/
    if len(parts) >= 3 and parts[-3] == "rest" and parts[-2].isdigit():
        return parts[-2]
    return None


def _display_name(kind: str, fields: Mapping[str, Any]) -> str | None:
    if kind == "contact":
        name = " ".join(str(fields[key]) for key in ("NAME", "LAST_NAME") if fields.get(key))
        return name or None
    title = fields.get("TITLE")
    return str(title) if title else None
