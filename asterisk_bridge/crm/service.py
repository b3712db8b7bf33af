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
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
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
    TelephonyJournal,
    TranscriptInfo,
)
from .bitrix24 import Bitrix24Crm
from .bitrix24_oauth import AppAuth
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
# Slots of the portal's bucket numcfg leaves unused: two requests sent half a second apart
# (the leak at 2/s) can arrive closer together, and with the bucket full to the last slot
# the second would be refused. Two slots absorb that jitter for the cost of two requests
# (fewer for a small configured burst, a tenth of it at most).
PORTAL_HEADROOM = 2
# At shutdown, journal events still in flight get this long before they are cancelled.
CLOSE_DRAIN_S = 5.0
# A lead the CRM made while registering a call that was already saved is attached to the
# saved details; the save itself is queued (calls/core/journal.py), so it is looked for a
# few times before giving up.
ATTACH_LEAD_TRIES = 5
ATTACH_LEAD_PAUSE_S = 1.0


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
        # Per call, with a telephony journal (Bitrix24): what the journal events need.
        self._journaled: dict[str, _Journaled] = {}
        self._side_tasks: set[asyncio.Task[None]] = set()
        self.telephony: TelephonyJournal | None = (
            backend if getattr(backend, "telephony", False) else None  # type: ignore[assignment]
        )
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

    async def lookup_for_call(
        self, call_id: str, phone: str, *, region: str | None = None
    ) -> CrmEntity | None:
        """lookup(), once per call: the lead rules and step 7 (the responsible) share the
        answer instead of asking the CRM twice."""
        state = self._journaled.setdefault(call_id, _Journaled())
        if state.lookup is None:
            state.lookup = asyncio.ensure_future(self.lookup(phone, region=region))
        return await asyncio.shield(state.lookup)

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
        if self.telephony is not None:
            return await self._lead_by_register(e164, rules.lead_source, call)
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

    async def _lead_by_register(
        self, phone: str, source: str, call: CallInfo
    ) -> dict[str, Any] | None:
        """A CRM with a telephony journal makes the unknown caller's lead itself when the
        call is registered (Bitrix24 CRM_CREATE, CRM_SOURCE): one lead, from one side, and
        its responsible becomes the employee who answers (finish's USER_ID). A known
        caller's call is registered bound to what the CRM has."""
        entity = await self.lookup_for_call(call.call_id, phone)
        state = self._journaled.setdefault(call.call_id, _Journaled())
        if entity is not None:
            self._entities[call.call_id] = entity
            return _crm_field(entity, False)
        state.lead = (phone, source)
        return None

    def created_lead(self, call_id: str) -> asyncio.Future[dict[str, Any] | None] | None:
        """The `crm` field of the lead the CRM makes when it registers this call, or None
        when no lead is planned (resolved to None if the CRM made none)."""
        state = self._journaled.get(call_id)
        if state is None or state.lead is None:
            return None
        return state.created

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

    async def finish_left_open(self) -> int:
        """Finish in the CRM the calls this node registered and never finished (it was
        restarted in between, or the CRM was down then); never raises."""
        finish = getattr(self.backend, "finish_left_open", None)
        if finish is None:
            return 0
        try:
            ok, done = await self._attempt(
                "call_finished",
                finish,
                budget=self.timeout + RETRY_RATE_WAIT_S * RETRY_BATCH,
                urgent=False,
            )
        except Exception:  # the store down: next round
            log.exception("could not read the calls left open in the CRM")
            return 0
        return done if ok else 0

    def portal_workdays(self) -> dict[str, str] | None:
        """{employee: working|paused|ended} as the CRM's own work-day tracking has them
        (crm.workday: bitrix24), answered at once from a cache the CRM refreshes in the
        background; None when numcfg's workday is the one that counts."""
        workdays = getattr(self.backend, "portal_workdays", None)
        if workdays is None:
            return None
        try:
            return workdays()
        except Exception:
            log.exception("portal work days unavailable")
            return None

    async def _give_up(self, op: PendingCrmOp, error: str, due: datetime | None) -> None:
        if due is None:
            log.error("giving up on CRM operation %s: %s", op.id, error)
        await asyncio.to_thread(self._store.crm.retry_pending_later, op.id, error=error, due_at=due)

    # -- call journal (fire and forget) ----------------------------------------------------

    async def notify_started(self, call: CallInfo, *, create_crm: bool = False) -> None:
        """Report the call's start; returns at once. `create_crm`: let the CRM create a lead
        itself (Bitrix24 CRM_CREATE); keep False when lead_for_call handles leads."""
        entity = self._entities.pop(call.call_id, None)
        if self.telephony is not None:
            state = self._journaled.setdefault(call.call_id, _Journaled())
            state.entity = entity
            self._started(call, state)
            return
        self._enqueue(
            call,
            "call_started",
            lambda: self.backend.call_started(call, create_crm=create_crm, entity=entity),
            self._journal_budget(),
        )

    async def notify_adopted(self, call: CallInfo, remote_id: str) -> None:
        """A call the CRM registered itself (Bitrix24 click-to-call): its journal goes on
        from that CALL_ID, without a register of numcfg's."""
        adopt = getattr(self.backend, "adopt", None)
        if adopt is None:
            return
        self._journaled.setdefault(call.call_id, _Journaled())
        self._enqueue(call, "call_started", lambda: adopt(call, remote_id), self._journal_budget())

    async def install_app(self, auth: Mapping[str, Any]) -> bool:
        """The CRM's local application was installed (Bitrix24 ONAPPINSTALL): keep its
        tokens, then register the lines and events. False when refused."""
        install = getattr(self.backend, "install", None)
        if install is None:
            return False
        ok, _ = await self._attempt("install", lambda: install(auth), budget=self.timeout * 4)
        return ok

    async def employee_of_user(self, user_id: Any) -> str | None:
        """The employee a CRM user is (Bitrix24: crm_user_id or inner number), or None."""
        users = getattr(self.backend, "users", None)
        if users is None:
            return None
        try:
            return await users.employee_of(user_id)
        except Exception:
            log.exception("CRM user %r not matched to an employee", user_id)
            return None

    async def is_portal_event(self, auth: Mapping[str, Any]) -> bool:
        check = getattr(self.backend, "is_portal_event", None)
        if check is None:
            return False
        try:
            return bool(await check(auth))
        except Exception:
            log.exception("CRM event not checked")
            return False

    async def set_up_portal(self, lines: Mapping[str, str], handler_url: str | None) -> None:
        """External lines and event bindings in the CRM (Bitrix24 local application)."""
        set_up = getattr(self.backend, "set_up_portal", None)
        if set_up is not None:
            await self._attempt(
                "set_up_portal",
                lambda: set_up(lines, handler_url),
                budget=self._journal_budget(),
                urgent=False,
            )

    def _started(self, call: CallInfo, state: _Journaled) -> None:
        """The call's start reaches the telephony journal. An incoming call nobody rang yet
        waits for its first ring (or forward, or end): the card then pops up for exactly
        the phones that ring, and it gets the right TYPE. What happened while its lead was
        looked up (a phone already ringing) is caught up now."""
        incoming = call.direction == "incoming" and call.employee is None
        if not incoming:
            self._register(call, state, show=list(state.ringing), redirected=False)
        elif state.forwarded_first is not None:
            employee = state.forwarded_first[0]
            self._register(
                dataclasses.replace(call, employee=employee), state, show=[], redirected=True
            )
        elif state.rung:
            first = dataclasses.replace(call, employee=state.rung[0])
            self._register(first, state, show=list(state.ringing), redirected=False)
        else:
            state.deferred = call

    async def notify_ringing(self, call: CallInfo, employees: list[str]) -> None:
        """These employees' phones ring for the call now; returns at once."""
        if self.telephony is None or not employees:
            return
        state = self._journaled.setdefault(call.call_id, _Journaled())
        state.rung.extend(e for e in employees if e not in state.rung)
        state.ringing.extend(e for e in employees if e not in state.ringing)
        if not state.registered and state.deferred is None:
            return  # before notify_started: _started shows them the card
        if state.deferred is not None:
            first = dataclasses.replace(state.deferred, employee=employees[0])
            state.deferred = None
            self._register(first, state, show=list(employees), redirected=False)
            return
        telephony = self.telephony
        self._enqueue(
            call, "call_show", lambda: telephony.show(call, list(employees)), self._journal_budget()
        )

    async def notify_not_taken(self, call: CallInfo, employees: list[str]) -> None:
        """These employees' phones stopped ringing without their taking the call."""
        if self.telephony is None or not employees:
            return
        state = self._journaled.get(call.call_id)
        if state is None:
            return
        state.ringing = [e for e in state.ringing if e not in employees]
        if not state.registered:
            return  # not registered (yet): no card was shown, none will be for them
        telephony = self.telephony
        self._enqueue(
            call, "call_hide", lambda: telephony.hide(call, list(employees)), self._journal_budget()
        )

    async def notify_forwarding(self, call: CallInfo, employee: str | None = None) -> None:
        """The call goes out to an external number (a mobile: `employee`'s) before any
        employee's phone rang: registered as an incoming call with redirection (TYPE 3)."""
        if self.telephony is None:
            return
        state = self._journaled.setdefault(call.call_id, _Journaled())
        if not state.registered and state.deferred is None:
            if not state.rung and state.forwarded_first is None:
                state.forwarded_first = (employee,)
            return
        if state.deferred is None:
            return
        first = dataclasses.replace(state.deferred, employee=employee)
        state.deferred = None
        self._register(first, state, show=[], redirected=True)

    def _register(
        self, call: CallInfo, state: _Journaled, *, show: list[str], redirected: bool
    ) -> None:
        telephony = self.telephony
        assert telephony is not None
        state.registered = True
        source = state.lead[1] if state.lead is not None else None

        async def job() -> None:
            ok, created = await self._attempt(
                "call_started",
                lambda: telephony.register(
                    call, entity=state.entity, lead_source=source, redirected=redirected, show=show
                ),
                budget=self._journal_budget(),
                urgent=False,
            )
            state.register_failed = not ok
            field_ = _crm_field(created, True) if ok and created is not None else None
            if not state.created.done():
                state.created.set_result(field_)
            if field_ is not None and state.saved is not None and state.saved.get("crm") is None:
                # Beside the chain: finish must not wait for the details' save.
                attach = asyncio.create_task(self._attach_lead(call.call_id, field_))
                self._side_tasks.add(attach)
                attach.add_done_callback(self._side_tasks.discard)

        self._enqueue_job(call, job)

    async def notify_answered(self, call: CallInfo, employee: str) -> None:
        state = self._journaled.get(call.call_id)
        if state is not None:
            state.answered_by = employee
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
        saved_crm: Mapping[str, Any] | None = None,
    ) -> None:
        """`saved_crm`: the `crm` field the call's details were saved with, so a lead the
        CRM makes only now is attached to them."""
        self._entities.pop(call.call_id, None)
        state = self._journaled.get(call.call_id)
        if state is not None:
            state.saved = {"crm": saved_crm}
            if state.deferred is not None:
                # Ended before ringing anyone (after hours, voicemail, an IVR hang-up): it
                # is registered now, so the CRM still has the call (and its lead).
                first, state.deferred = state.deferred, None
                self._register(first, state, show=[], redirected=disposition == "forwarded")
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
        if state is not None:
            self._enqueue_job(call, lambda: self._after_finish(call, state))

    async def _after_finish(self, call: CallInfo, state: _Journaled) -> None:
        """The call is over in the CRM: forget it; a lead the CRM could not make when the
        call was registered (CRM down) is made by numcfg later, for whoever answered."""
        self._journaled.pop(call.call_id, None)
        if not state.created.done():
            state.created.set_result(None)
        if state.lead is not None and state.register_failed:
            phone, source = state.lead
            answered = state.answered_by or (state.rung[0] if state.rung else None)
            await self._keep_for_retry(phone, source, dataclasses.replace(call, employee=answered))

    async def _attach_lead(self, call_id: str, crm_field: dict[str, Any]) -> None:
        for _ in range(ATTACH_LEAD_TRIES):
            try:
                await asyncio.to_thread(self._store.calls.attach_crm, call_id, crm_field)
                return
            except NotFoundError:
                await asyncio.sleep(ATTACH_LEAD_PAUSE_S)
            except Exception as exc:
                log.warning("call %s: its CRM lead not saved with it: %s", call_id, exc)
                return
        log.warning("call %s: its CRM lead not saved with it (no such call)", call_id)

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

        async def job() -> None:
            await self._attempt(what, factory, budget=budget, urgent=False)

        self._enqueue_job(call, job, what)

    def _enqueue_job(
        self, call: CallInfo, job: Callable[[], Awaitable[None]], what: str = "job"
    ) -> None:
        """Run `job` after the call's previous journal event (each bounds its own time)."""
        previous = self._chains.get(call.call_id)

        async def run() -> None:
            if previous is not None:
                # Finish must not overtake register: Bitrix24 needs register's CALL_ID.
                await asyncio.wait([previous])
            await job()

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
        pending = list(self._chains.values()) + list(self._side_tasks)
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


@dataclass(eq=False)
class _Journaled:
    """What CrmService keeps about one call for a CRM with a telephony journal."""

    lookup: asyncio.Future[CrmEntity | None] | None = None  # the call's one look-up
    entity: CrmEntity | None = None  # what the call is registered bound to
    lead: tuple[str, str] | None = None  # (phone, source): the CRM makes the lead
    deferred: CallInfo | None = None  # an incoming call waiting for its first ring
    registered: bool = False  # register is sent (or on its way)
    rung: list[str] = field(default_factory=list)  # employees whose phones rang, in order
    ringing: list[str] = field(default_factory=list)  # those ringing now
    forwarded_first: tuple[str | None] | None = None  # forwarded before any ring (whose)
    answered_by: str | None = None
    register_failed: bool = False
    saved: dict[str, Any] | None = None  # the details as saved, once the call ended
    created: asyncio.Future[dict[str, Any] | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


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
    node: str = "",
) -> CrmService:
    """The CrmService for `config.crm`. Pass `config_source` (e.g. the holder's current
    config) so employee mappings follow reloads; the backend itself is fixed at start-up.
    `node` names this node's calls in the CRM journal kept in the store."""

    def employees() -> Mapping[str, Employee]:
        return (config_source() if config_source is not None else config).employees

    settings = config.crm
    backend: CrmBackend
    if settings.backend == "bitrix24":
        if not settings.url:
            raise ValueError("crm backend bitrix24 needs crm.url")
        app_auth = None
        if settings.auth == "app":
            if not settings.client_id or not settings.client_secret:
                raise ValueError("crm auth app needs crm.client_id and crm.client_secret")
            app_auth = AppAuth(
                portal_url=settings.url,
                client_id=settings.client_id,
                client_secret=settings.client_secret,
                oauth_url=settings.oauth_url,
                store=store,
                timeout=settings.timeout,
            )
        backend = Bitrix24Crm(
            url=settings.url,
            timeout=settings.timeout,
            employees=employees,
            rate_limit=TokenBucket(
                per_second=settings.rate_limit.per_second,
                burst=settings.rate_limit.burst,
                headroom=min(PORTAL_HEADROOM, settings.rate_limit.burst // 10),
            ),
            store=store,
            node=node,
            portal_workday=settings.workday == "bitrix24",
            app_auth=app_auth,
            default_user_id=settings.default_user_id,
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
