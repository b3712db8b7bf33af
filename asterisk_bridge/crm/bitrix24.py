"""Bitrix24 through an inbound webhook (https://portal/rest/<user>/<code>/<method>).

Only documented REST methods are used: crm.duplicate.findbycomm and crm.<entity>.get for
lookups, crm.lead.add / crm.lead.update for leads, user.get and timeman.status for the
employees (bitrix24_users.py), telephony.externalcall.* for the call journal
(bitrix24_journal.py), crm.timeline.comment.add for transcripts, and `batch` to send
several of them in one request. Bitrix24 answers {"result": ...} on success and
{"error": ..., "error_description": ...} (usually with HTTP 400) on failure.

Every request takes a token from a client-side bucket shaped like the portal's (ratelimit.py)
and is retried with backoff when the portal still says "slow down" (503
QUERY_LIMIT_EXCEEDED, 429). A refused webhook is reported as REASON_REFUSED with what to fix,
which CrmService turns into its `problem`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

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
from .bitrix24_journal import CallJournal
from .bitrix24_oauth import AppAuth
from .bitrix24_users import PortalUsers, PortalWorkdays
from .http import JsonClient, dumps
from .ratelimit import Backoff, TokenBucket, current_budget

if TYPE_CHECKING:
    from asterisk_bridge.store import Store

log = logging.getLogger("numcfg.crm.bitrix24")

# Which entity a known phone resolves to when it is on several: a contact is a person we
# work with, a company the organisation, a lead only a prospect.
LOOKUP_ORDER = (("CONTACT", "contact"), ("COMPANY", "company"), ("LEAD", "lead"))
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
        "portal the call journal needs a local application (crm.auth: app, see "
        "asterisk_bridge/crm/README.md); lookups and leads still work",
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
# batch takes at most 50 commands.
BATCH_MAX = 50
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
    # CrmService registers calls through the TelephonyJournal methods (register, show,
    # hide) and lets the portal create unknown callers' leads (CRM_CREATE).
    telephony = True

    def __init__(
        self,
        *,
        url: str,
        timeout: float,
        employees: Callable[[], Mapping[str, Employee]],
        rate_limit: TokenBucket | None = None,
        backoff: Backoff | None = None,
        store: Store | None = None,
        node: str = "",
        portal_workday: bool = False,
        app_auth: AppAuth | None = None,
        default_user_id: str | None = None,
    ) -> None:
        """`employees` is read at each use, so a config reload changes the user mapping.
        `rate_limit` paces requests (default: the cloud plans' 2/s, bursts of 50).
        `store` keeps registered calls' CALL_IDs (for `node`) until they are finished.
        `portal_workday`: skip_absent_employees follows the portal's timeman.
        `app_auth`: a local application's OAuth tokens instead of a webhook URL."""
        self._base = url if url.endswith("/") else url + "/"
        self.app_auth = app_auth
        self._last_token: str | None = None
        self._http = JsonClient(timeout=timeout)
        self._employees = employees
        self.rate_limit = rate_limit or TokenBucket(
            per_second=DEFAULT_PER_SECOND, burst=DEFAULT_BURST
        )
        self._backoff = backoff or Backoff()
        # Who registers calls nobody was rung for: as configured, else the webhook's owner
        # (/rest/<user>/<code>/), else the user who installed the local application.
        self._default_user_id = default_user_id or (None if app_auth else _webhook_user(self._base))
        self.users = PortalUsers(rest=self.call, employees=employees)
        self.workdays = (
            PortalWorkdays(batch=self.batch, users=self.users, employees=employees)
            if portal_workday
            else None
        )
        self.journal = CallJournal(
            rest=self.call,
            batch=self.batch,
            users=self.users,
            default_user=lambda: self.default_user_id,
            store=store,
            node=node,
            upload=self._upload,
        )

    @property
    def default_user_id(self) -> str | None:
        if self._default_user_id is not None:
            return self._default_user_id
        return None if self.app_auth is None else self.app_auth.user_id

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
        retry = 0
        refreshed = False
        while True:
            await self.rate_limit.acquire(deadline=deadline, urgent=urgent)
            try:
                return await self._call_once(method, params, timeout)
            except CrmError as exc:
                if exc.problem == "expired_token" and self.app_auth and not refreshed:
                    # The access token lapsed (an hour); refreshed once, then retried.
                    refreshed = True
                    await self.app_auth.refresh(self._last_token)
                    continue
                if exc.reason != REASON_RATE_LIMITED:
                    raise
                log.debug("%s: %s; retrying", method, exc)
                self.rate_limit.drain()
                await self._backoff.wait(retry, deadline=deadline, why=str(exc))
                retry += 1

    async def batch(
        self,
        commands: Mapping[str, tuple[str, Mapping[str, Any]]],
        *,
        raise_for: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Several methods in one request (one token of the rate limit): {key: result} of
        the commands that succeeded. A later command may use an earlier one's answer
        (`$result[key][FIELD]`). A command in `raise_for` that failed raises its error."""
        if len(commands) > BATCH_MAX:
            raise ValueError(f"batch takes at most {BATCH_MAX} commands")
        cmd = {key: f"{method}?{php_query(params)}" for key, (method, params) in commands.items()}
        answer = await self.call("batch", {"halt": 0, "cmd": cmd})
        if not isinstance(answer, dict):
            raise CrmError(REASON_BAD_RESPONSE, "batch: unexpected result")
        results = answer.get("result") or {}
        errors = answer.get("result_error") or {}
        # PHP's empty array is JSON []: no results (or no errors) at all.
        results = results if isinstance(results, dict) else {}
        errors = errors if isinstance(errors, dict) else {}
        for key in raise_for:
            if key in errors:
                raise _command_error(commands[key][0], errors[key])
        return {key: value for key, value in results.items() if key not in errors}

    async def _call_once(
        self, method: str, params: Mapping[str, Any], timeout: float | None
    ) -> Any:
        url = self._base + method
        if self.app_auth is not None:
            endpoint, token = await self.app_auth.credentials()
            self._last_token = token
            url = endpoint + method
            params = {**params, "auth": token}
        body = dumps(params)
        try:
            status, answer = await self._http.post(url, body, timeout=timeout)
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

    async def _upload(self, url: str, field: str, filename: str, content: bytes) -> None:
        """The second step of attachRecord: the file itself, to the URL the portal gave."""
        budget = current_budget()
        await self.rate_limit.acquire(deadline=None if budget is None else budget.deadline)
        status, answer = await self._http.post_file(url, field, filename, content)
        special = _limit_or_refusal("attachRecord upload", status, answer)
        if special is not None:
            raise special
        if status >= 400 or (isinstance(answer, dict) and "error" in answer):
            raise CrmError(REASON_HTTP_4XX, f"recording upload: HTTP {status}", status=status)

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
            responsible=await self.users.employee_of(fields.get("ASSIGNED_BY_ID")),
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
        user_id = await self.users.user_of(responsible)
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
        user_id = await self.users.user_of(employee)
        if user_id is None:
            raise CrmError(REASON_UNMAPPED, f"employee {employee!r} is no portal user")
        await self.call("crm.lead.update", {"id": lead_id, "fields": {"ASSIGNED_BY_ID": user_id}})

    # -- call journal (bitrix24_journal.py) ------------------------------------------------

    async def register(
        self,
        call: CallInfo,
        *,
        entity: CrmEntity | None,
        lead_source: str | None,
        redirected: bool,
        show: list[str],
    ) -> CrmEntity | None:
        return await self.journal.register(
            call, entity=entity, lead_source=lead_source, redirected=redirected, show=show
        )

    async def show(self, call: CallInfo, employees: list[str]) -> None:
        await self.journal.show(call, employees)

    async def hide(self, call: CallInfo, employees: list[str]) -> None:
        await self.journal.hide(call, employees)

    async def call_started(
        self, call: CallInfo, *, create_crm: bool, entity: CrmEntity | None = None
    ) -> None:
        """The CrmBackend form of register (CrmService uses register itself)."""
        await self.journal.register(
            call,
            entity=entity,
            lead_source="CALL" if create_crm else None,
            redirected=False,
            show=[],
        )

    async def call_answered(self, call: CallInfo, employee: str) -> None:
        await self.journal.answered(call, employee)

    async def call_finished(
        self,
        call: CallInfo,
        *,
        duration: int,
        disposition: str,
        rating: int | None,
        recording_path: str | None,
    ) -> None:
        await self.journal.finished(
            call,
            duration=duration,
            disposition=disposition,
            rating=rating,
            recording_path=recording_path,
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

    async def finish_left_open(self) -> int:
        return await self.journal.finish_left_open()

    async def adopt(self, call: CallInfo, remote_id: str) -> None:
        """A call the portal registered itself (click-to-call): only finish is left."""
        await self.journal.adopt(call, remote_id)

    # -- the local application -------------------------------------------------------------

    async def install(self, auth: Mapping[str, Any]) -> None:
        if self.app_auth is None:
            raise CrmError(REASON_REFUSED, "crm.auth is not app: no install expected")
        await self.app_auth.install(auth)

    async def is_portal_event(self, auth: Mapping[str, Any]) -> bool:
        return self.app_auth is not None and await self.app_auth.is_portal_event(auth)

    async def set_up_portal(self, lines: Mapping[str, str], handler_url: str | None) -> None:
        """Register numcfg's numbers as the portal's external lines (the number picked for
        click-to-call, shown in call cards) and bind OnExternalCallStart to handler_url,
        in one batch. A line or binding the portal has already is no error."""
        commands: dict[str, tuple[str, Mapping[str, Any]]] = {
            f"line{index}": ("telephony.externalLine.add", {"NUMBER": number, "NAME": name})
            for index, (number, name) in enumerate(lines.items())
        }
        if handler_url:
            commands["bind"] = (
                "event.bind",
                {"event": "OnExternalCallStart", "handler": handler_url},
            )
        if commands:
            await self.batch(dict(list(commands.items())[:BATCH_MAX]))

    def portal_workdays(self) -> dict[str, str] | None:
        """Employees' work days per the portal (crm.workday: bitrix24), from the last read
        (a new one starts in the background when it is old); None when not followed."""
        return None if self.workdays is None else self.workdays.states()

    async def close(self) -> None:
        await self._http.close()
        if self.app_auth is not None:
            await self.app_auth.close()

    # -- user mapping ----------------------------------------------------------------------

    def employee_for_user(self, user_id: Any) -> str | None:
        """The numcfg employee this Bitrix24 user is, or None."""
        return self.users.employee_for(user_id)

    def user_for_employee(self, employee: str | None) -> str | None:
        return self.users.user_for(employee)


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


def _command_error(method: str, error: Any) -> CrmError:
    """A failed batch command as the error its method alone would have raised."""
    answer = error if isinstance(error, dict) else {"error": str(error)}
    special = _limit_or_refusal(method, None, answer)
    if special is not None:
        return special
    return CrmError(
        REASON_REMOTE_ERROR,
        f"{method}: {answer.get('error')}: {answer.get('error_description', '')}",
        answer=answer,
    )


def php_query(params: Mapping[str, Any]) -> str:
    """`params` as PHP's http_build_query writes them (a[b][0]=c), the form of batch
    commands; booleans as 1/0 (PHP's true/false would read as strings)."""
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(f"{prefix}[{key}]" if prefix else str(key), item)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(f"{prefix}[{index}]", item)
        elif isinstance(value, bool):
            pairs.append((prefix, "1" if value else "0"))
        elif value is None:
            pairs.append((prefix, ""))
        else:
            pairs.append((prefix, str(value)))

    walk("", params)
    return "&".join(f"{quote(key, safe='')}={quote(value, safe='')}" for key, value in pairs)


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
