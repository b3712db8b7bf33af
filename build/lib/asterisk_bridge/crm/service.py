"""CrmService: what the call flow uses. It wraps a backend with the never-block rules.

A CRM is another company's server on the internet. Whatever it does (hangs, answers 500,
resets the connection, sends HTML), a caller must still be routed: every request runs under
`crm.timeout`, failures become None plus a log line and a metrics.crm_failures count, and no
method here raises. A lead that could not be created is kept in the store and created later
by retry_pending(), which the app calls periodically.

Each operation runs under a ratelimit.RequestBudget: routing (lookup, leads) is urgent and
bounded by `crm.timeout`, so waiting for a rate-limit token never holds a caller longer;
journal events may wait their turn much longer. A CRM that refuses our credentials sets
`problem` (what to fix), logged when it appears and when it clears, not once per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from asterisk_bridge.config.schema import Config, Employee, Number
from asterisk_bridge.metrics import Metrics
from asterisk_bridge.store import CallDetails, NotFoundError, PendingCrmOp, Store

from .base import (
    REASON_REFUSED,
    REASON_TIMEOUT,
    REASON_UNEXPECTED,
    CallInfo,
    CrmBackend,
    CrmEntity,
    CrmError,
    TranscriptInfo,
)
from .bitrix24 import Bitrix24Crm
from .builtin import BuiltinCrm
from .ratelimit import TokenBucket, request_budget
from .rules import is_exception, region_of, to_e164, wants_lead
from .webhook import WebhookCrm

log = logging.getLogger("numcfg.crm")

T = TypeVar("T")

PENDING_LEAD = "lead"
# Retries back off from half a minute to an hour: a CRM outage rarely outlasts a few
# minutes, and an hour between attempts costs nothing while it does.
RETRY_FIRST_DELAY_S = 30.0
RETRY_MAX_DELAY_S = 3600.0
# About two days of hourly attempts; past that the CRM is not coming back by itself and an
# operator has to look (the row stays, with status failed and the last error).
RETRY_MAX_ATTEMPTS = 50
RETRY_BATCH = 20
# A node that died while retrying leaves its claim; others take over after this long.
RETRY_CLAIM_STALE_S = 300.0
# Journal events (call started/answered/finished) run after or beside the call and nobody
# waits for them, but they still must end: twice the CRM timeout, since an event may need
# two requests (Bitrix24 finish then attachRecord, which has its own budget on top).
NOTIFY_BUDGET_FACTOR = 2.0
RECORDING_UPLOAD_BUDGET_S = 60.0
# On top of that, journal events may wait this long for rate-limit tokens behind other
# calls' events: at Bitrix24's 2 requests/s it drains a backlog of 240 requests (a burst of
# about 80 calls); a longer backlog means the portal's plan is too small for the traffic.
JOURNAL_RATE_WAIT_S = 120.0
# A retried lead waits less: retry_pending works through a batch in turn, and the batch must
# end well before its claim goes stale (RETRY_BATCH * (timeout + this) < RETRY_CLAIM_STALE_S).
RETRY_RATE_WAIT_S = 10.0
# Operations sharing the REST methods share their problem: a retried lead that succeeds
# clears what a failed lead creation set.
PROBLEM_SCOPES = {"retry_lead": "create_lead"}
# At shutdown, journal events still in flight get this long before they are cancelled.
CLOSE_DRAIN_S = 5.0


class CrmService:
    def __init__(
        self,
        *,
        backend: CrmBackend,
        timeout: float,
        metrics: Metrics,
        store: Store,
        default_region: str | None,
        employees: Callable[[], Mapping[str, Employee]] | None = None,
    ) -> None:
        """`employees` (read at each use) drops responsibles that are not numcfg employees."""
        self.backend = backend
        self.timeout = timeout
        self._metrics = metrics
        self._store = store
        self._default_region = default_region
        self._employees = employees
        # Per call: the entity lead_for_call attached it to, so call.started can bind it.
        self._entities: dict[str, CrmEntity] = {}
        # Per call: its latest journal event, so events reach the CRM in order.
        self._chains: dict[str, asyncio.Task[None]] = {}
        # Per operation (lookup, call_started, ...): why the CRM refuses it. Kept per
        # operation because a refusal can be partial: a portal may take lookups through a
        # webhook but refuse the call journal (WRONG_AUTH_TYPE).
        self._problems: dict[str, CrmProblem] = {}

    @property
    def problem(self) -> str | None:
        """What an operator has to fix for the CRM to accept numcfg again, or None.

        Set when the CRM refuses our credentials (revoked webhook, missing scope, wrong
        auth type), cleared when the refused operation next succeeds. For /ready.
        """
        fixes = dict.fromkeys(found.fix for found in self._problems.values())
        return "; ".join(fixes) or None

    @property
    def problems(self) -> dict[str, CrmProblem]:
        """The current refusals by operation, e.g. {"call_started": CrmProblem(...)}."""
        return dict(self._problems)

    # -- lookups ---------------------------------------------------------------------------

    async def lookup(self, phone: str, *, region: str | None = None) -> CrmEntity | None:
        """The caller's CRM entity, or None when unknown, unparsable, or the CRM fails.

        `region` (ISO, e.g. "FR") reads national numbers; default: the configured one.
        """
        e164 = to_e164(phone, region or self._default_region)
        if e164 is None:
            log.debug("CRM lookup skipped: %r is no phone number", phone)
            return None
        ok, entity = await self._attempt("lookup", lambda: self.backend.lookup(e164))
        return self._known_responsible(entity) if ok else None

    def _known_responsible(self, entity: CrmEntity | None) -> CrmEntity | None:
        if entity is None or entity.responsible is None or self._employees is None:
            return entity
        if entity.responsible in self._employees():
            return entity
        log.warning(
            "CRM %s %s names responsible %r, who is no employee; ignoring it",
            entity.kind,
            entity.id,
            entity.responsible,
        )
        return CrmEntity(kind=entity.kind, id=entity.id, name=entity.name, responsible=None)

    # -- leads -----------------------------------------------------------------------------

    async def lead_for_call(
        self, *, number_cfg: Number, phone: str, direction: str, call: CallInfo
    ) -> dict[str, Any] | None:
        """Apply the number's `crm:` lead rules to this call.

        Returns the SPEC section 7 `crm` value ({"entity", "id", "created"}), or None when
        no lead is wanted or the CRM failed (the lead is then created by retry_pending).
        """
        rules = number_cfg.crm
        if not wants_lead(rules.create_lead, direction):
            return None
        e164 = to_e164(phone, region_of(number_cfg.number) or self._default_region)
        if e164 is None or is_exception(e164, rules.exceptions):
            return None
        ok, result = await self._attempt(
            "create_lead",
            lambda: self.backend.create_lead(
                phone=e164, source=rules.lead_source, responsible=call.employee, call=call
            ),
        )
        if not ok:
            await self._keep_for_retry(e164, rules.lead_source, call)
            return None
        self._entities[call.call_id] = result.entity
        return _crm_field(result.entity, result.created)

    async def assign_lead(self, lead_id: str, employee: str) -> bool:
        """Make `employee` responsible for the lead (reassign_lead_on_transfer); never raises."""
        ok, _ = await self._attempt(
            "assign_lead", lambda: self.backend.assign_lead(lead_id, employee)
        )
        return ok

    async def _keep_for_retry(self, phone: str, source: str, call: CallInfo) -> None:
        payload = {
            "phone": phone,
            "source": source,
            "responsible": call.employee,
            "call": call.as_json(),
        }
        due_at = datetime.now(UTC) + timedelta(seconds=RETRY_FIRST_DELAY_S)
        try:
            await asyncio.to_thread(
                self._store.crm.add_pending, kind=PENDING_LEAD, payload=payload, due_at=due_at
            )
        except Exception:
            # The store being down too must not end the call; the lead is lost, say so.
            log.exception("could not keep the lead for %s for a later retry", phone)

    async def retry_pending(self, *, now: datetime | None = None) -> int:
        """Retry the leads whose creation failed; returns how many were created now."""
        now = now or datetime.now(UTC)
        try:
            ops = await asyncio.to_thread(
                self._store.crm.claim_pending,
                now,
                limit=RETRY_BATCH,
                stale_after=RETRY_CLAIM_STALE_S,
            )
        except Exception:
            log.exception("could not read pending CRM operations")
            return 0
        created = 0
        for op in ops:
            created += await self._retry_one(op, now)
        return created

    async def _retry_one(self, op: PendingCrmOp, now: datetime) -> int:
        payload = op.payload
        if op.kind != PENDING_LEAD:
            await self._give_up(op, f"unknown operation kind {op.kind!r}", None)
            return 0
        call = CallInfo.from_json(payload["call"])
        # Nobody waits for a retry: it queues behind journal events for rate-limit tokens.
        ok, result = await self._attempt(
            "retry_lead",
            lambda: self.backend.create_lead(
                phone=payload["phone"],
                source=payload["source"],
                responsible=payload.get("responsible"),
                call=call,
            ),
            budget=self.timeout + RETRY_RATE_WAIT_S,
            urgent=False,
        )
        if not ok:
            attempts = op.attempts + 1
            due = None if attempts >= RETRY_MAX_ATTEMPTS else now + _backoff(attempts)
            await self._give_up(op, f"attempt {attempts} failed", due)
            return 0
        await asyncio.to_thread(self._store.crm.finish_pending, op.id)
        with contextlib.suppress(NotFoundError):
            # The call's record gets its lead too, unless the call is still being saved.
            await asyncio.to_thread(
                self._store.calls.attach_crm,
                call.call_id,
                _crm_field(result.entity, result.created),
            )
        log.info("CRM lead for %s created on retry (call %s)", payload["phone"], call.call_id)
        return 1

    async def _give_up(self, op: PendingCrmOp, error: str, due: datetime | None) -> None:
        if due is None:
            log.error("giving up on CRM operation %s: %s", op.id, error)
        await asyncio.to_thread(self._store.crm.retry_pending_later, op.id, error=error, due_at=due)

    # -- call journal (fire and forget) ----------------------------------------------------

    async def notify_started(self, call: CallInfo, *, create_crm: bool = False) -> None:
        """Report the call's start; returns at once. `create_crm`: let the CRM create a lead
        itself (Bitrix24 CRM_CREATE); keep False when lead_for_call handles leads."""
        entity = self._entities.pop(call.call_id, None)
        self._enqueue(
            call,
            "call_started",
            lambda: self.backend.call_started(call, create_crm=create_crm, entity=entity),
            self._journal_budget(),
        )

    async def notify_answered(self, call: CallInfo, employee: str) -> None:
        self._enqueue(
            call,
            "call_answered",
            lambda: self.backend.call_answered(call, employee),
            self._journal_budget(),
        )

    async def notify_finished(
        self,
        call: CallInfo,
        *,
        duration: int,
        disposition: str,
        rating: int | None,
        recording_path: str | None,
    ) -> None:
        self._entities.pop(call.call_id, None)
        budget = self._journal_budget()
        if recording_path:
            budget += RECORDING_UPLOAD_BUDGET_S
        self._enqueue(
            call,
            "call_finished",
            lambda: self.backend.call_finished(
                call,
                duration=duration,
                disposition=disposition,
                rating=rating,
                recording_path=recording_path,
            ),
            budget,
        )

    async def notify_transcript(self, details: CallDetails, text: str) -> bool:
        """Send a call's transcript to the CRM (after the call: nobody waits for it, but it
        is awaited, so the transcription worker paces itself on the CRM). Never raises;
        True when the CRM took it (or keeps no journal of its own)."""
        if not getattr(self.backend, "keeps_journal", True):
            return True
        incoming = details.direction.value == "incoming"
        call = TranscriptInfo(
            call_id=details.id,
            number_id=details.number,
            direction=details.direction.value,
            phone=details.caller if incoming else details.callee,
            started_at=details.started_at,
        )
        found = details.crm or {}
        entity = None
        if found.get("entity") and found.get("id"):
            entity = CrmEntity(
                kind=str(found["entity"]), id=str(found["id"]), name=None, responsible=None
            )
        ok, _ = await self._attempt(
            "call_transcript",
            lambda: self.backend.call_transcript(call, entity=entity, text=text),
            budget=self._journal_budget(),
            urgent=False,
        )
        return ok

    def _enqueue(
        self,
        call: CallInfo,
        what: str,
        factory: Callable[[], Awaitable[None]],
        budget: float,
    ) -> None:
        if not getattr(self.backend, "keeps_journal", True):
            return
        previous = self._chains.get(call.call_id)

        async def run() -> None:
            if previous is not None:
                # Finish must not overtake register: Bitrix24 needs register's CALL_ID.
                await asyncio.wait([previous])
            await self._attempt(what, factory, budget=budget, urgent=False)

        task = asyncio.create_task(run(), name=f"crm-{what}-{call.call_id}")
        self._chains[call.call_id] = task
        task.add_done_callback(lambda done: self._forget(call.call_id, done))

    def _journal_budget(self) -> float:
        return self.timeout * NOTIFY_BUDGET_FACTOR + JOURNAL_RATE_WAIT_S

    def _forget(self, call_id: str, task: asyncio.Task[None]) -> None:
        if self._chains.get(call_id) is task:
            del self._chains[call_id]

    async def drain(self, timeout: float = CLOSE_DRAIN_S) -> None:
        """Wait for journal events in flight; cancel what is still running after `timeout`."""
        pending = list(self._chains.values())
        if not pending:
            return
        _done, still = await asyncio.wait(pending, timeout=timeout)
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still)

    async def close(self) -> None:
        await self.drain()
        await self.backend.close()

    # -- the guard -------------------------------------------------------------------------

    async def _attempt(
        self,
        what: str,
        factory: Callable[[], Awaitable[T]],
        *,
        budget: float | None = None,
        urgent: bool = True,
    ) -> tuple[bool, Any]:
        """(True, value) or, on any failure within `budget` seconds, (False, None).

        `urgent`: a call waits for this (routing); its requests go before journal ones.
        """
        seconds = self.timeout if budget is None else budget
        started = time.monotonic()
        try:
            with request_budget(seconds, urgent=urgent):
                async with asyncio.timeout(seconds):
                    value = await factory()
        except TimeoutError:
            reason, message = REASON_TIMEOUT, "no answer in time"
        except CrmError as exc:
            reason, message = exc.reason, str(exc)
            if exc.reason == REASON_REFUSED:
                # Said once when it appears and once when it clears (_set_problem): it
                # lasts until someone acts, so a line per call would only bury it.
                log.debug("CRM %s failed (%s): %s", what, reason, message)
                self._refused(what, exc)
                self._metrics.crm_failures.labels(reason=reason).inc()
                return False, None
        except Exception as exc:  # a backend bug must not end a call either
            log.exception("CRM %s: unexpected error", what)
            reason, message = REASON_UNEXPECTED, repr(exc)
        else:
            self._set_problem(what, None)
            self._metrics.crm_latency.labels(operation=what).observe(time.monotonic() - started)
            return True, value
        log.warning("CRM %s failed (%s): %s", what, reason, message)
        self._metrics.crm_failures.labels(reason=reason).inc()
        return False, None

    def _refused(self, what: str, exc: CrmError) -> None:
        fix = exc.fix or f"the CRM refuses numcfg: {exc}"
        self._set_problem(what, CrmProblem(reason=exc.problem or REASON_REFUSED, fix=fix))

    def _set_problem(self, what: str, found: CrmProblem | None) -> None:
        """Set (or, with None, clear) the problem of operation `what`, saying so in the log
        and the numcfg_crm_problem gauge when the set of problems changes."""
        key = PROBLEM_SCOPES.get(what, what)
        if self._problems.get(key) == found:
            return
        old_fixes = {problem.fix for problem in self._problems.values()}
        old_reasons = {problem.reason for problem in self._problems.values()}
        if found is None:
            del self._problems[key]
        else:
            self._problems[key] = found
        new_fixes = {problem.fix for problem in self._problems.values()}
        new_reasons = {problem.reason for problem in self._problems.values()}
        for fix in sorted(new_fixes - old_fixes):
            log.error("CRM refuses numcfg (%s): %s", what, fix)
        for fix in sorted(old_fixes - new_fixes):
            log.warning("CRM problem cleared, the CRM accepts numcfg again: %s", fix)
        for reason in old_reasons | new_reasons:
            self._metrics.crm_problem.labels(reason=reason).set(1 if reason in new_reasons else 0)


@dataclass(frozen=True)
class CrmProblem:
    """Why the CRM refuses an operation: `reason` is the metrics label, `fix` a sentence."""

    reason: str
    fix: str


def _crm_field(entity: CrmEntity, created: bool) -> dict[str, Any]:
    return {"entity": entity.kind, "id": entity.id, "created": created}


def _backoff(attempts: int) -> timedelta:
    delay = RETRY_FIRST_DELAY_S * 2 ** min(attempts, 20)
    return timedelta(seconds=min(delay, RETRY_MAX_DELAY_S))


def build_crm(
    config: Config,
    *,
    store: Store,
    metrics: Metrics,
    config_source: Callable[[], Config] | None = None,
) -> CrmService:
    """The CrmService for `config.crm`. Pass `config_source` (e.g. the holder's current
    config) so employee mappings follow reloads; the backend itself is fixed at start-up."""

    def employees() -> Mapping[str, Employee]:
        return (config_source() if config_source is not None else config).employees

    settings = config.crm
    backend: CrmBackend
    if settings.backend == "bitrix24":
        if not settings.url:
            raise ValueError("crm backend bitrix24 needs crm.url")
        backend = Bitrix24Crm(
            url=settings.url,
            timeout=settings.timeout,
            employees=employees,
            rate_limit=TokenBucket(
                per_second=settings.rate_limit.per_second, burst=settings.rate_limit.burst
            ),
        )
    elif settings.backend == "webhook":
        if not settings.url:
            raise ValueError("crm backend webhook needs crm.url")
        if not settings.secret:
            log.warning("crm.secret is not set: webhook events are sent unsigned")
        backend = WebhookCrm(url=settings.url, secret=settings.secret, timeout=settings.timeout)
    else:
        backend = BuiltinCrm(store=store)
    return CrmService(
        backend=backend,
        timeout=settings.timeout,
        metrics=metrics,
        store=store,
        default_region=default_region(config),
        employees=employees,
    )


def default_region(config: Config) -> str | None:
    """The country of the first configured number: how national caller ids are read."""
    for number in config.numbers.values():
        region = region_of(number.number)
        if region:
            return region
    return None
