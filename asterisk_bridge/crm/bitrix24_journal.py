"""The Bitrix24 telephony journal of a call: register, the call card (show / hide),
finish and the recording (telephony.externalcall.* / telephony.externalCall.attachRecord).

The CALL_ID register answers is kept in the store with what finish needs (who was rung,
who answered), so a node restarted between register and finish still finishes the call
(finish_left_open). Register and the first card go in one `batch` request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import REASON_BAD_RESPONSE, CallInfo, CrmEntity, CrmError
from .bitrix24_record import Upload, upload_recording

if TYPE_CHECKING:
    from asterisk_bridge.store import Store

    from .bitrix24_users import PortalUsers

log = logging.getLogger("numcfg.crm.bitrix24")

# telephony.externalcall.register TYPE: 1 outgoing, 2 incoming, 3 incoming with
# redirection (forwarded to a mobile or outside number), 4 callback.
CALL_TYPES = {"outgoing": 1, "incoming": 2, "callback": 4}
TYPE_REDIRECTED = 3
# telephony.externalcall.finish STATUS_CODE per SPEC section 7 disposition. A caller who
# hangs up before an answer cancelled the call (603-S); numcfg refusing it is a failure.
STATUS_CODES = {
    "answered": "200",
    "forwarded": "200",
    "missed": "304",
    "voicemail": "304",
    "after_hours": "304",
    "abandoned": "603-S",
    # Virtual hold: nobody talked to the caller yet; the callback is journaled as its own
    # call (TYPE 4).
    "callback_requested": "304",
    "declined": "603",
    "failed": "OTHER",
}
# FAILED_REASON, shown on the call's activity in the CRM, for calls nobody talked in.
FAILED_REASONS = {
    "missed": "nobody answered",
    "voicemail": "nobody answered; the caller reached voicemail",
    "after_hours": "outside working hours",
    "abandoned": "the caller hung up before an answer",
    "declined": "declined",
    "callback_requested": "the caller asked to be called back",
    "failed": "the call could not be put through (number not in service or no route)",
}
# A call left open by a restart is finished with the details the store has; a portal that
# refuses it for this many rounds (an hour of retries) will not take it at all.
LEFT_OPEN_MAX_ATTEMPTS = 60

Rest = Callable[..., Awaitable[Any]]
Batch = Callable[..., Awaitable[dict[str, Any]]]


class CallJournal:
    def __init__(
        self,
        *,
        rest: Rest,
        batch: Batch,
        users: PortalUsers,
        default_user: Callable[[], str | None],
        store: Store | None,
        node: str,
        upload: Upload | None = None,
    ) -> None:
        self._rest = rest
        self._upload = upload
        self._batch = batch
        self._users = users
        self._default_user = default_user
        self._store = store
        self._node = node
        # numcfg call id -> Bitrix24 CALL_ID, and what finish needs: the call as registered
        # (its employee: the first one rung), who was shown the card, who answered.
        self.remote: dict[str, str] = {}
        self._registered: dict[str, CallInfo] = {}
        self._rung: dict[str, list[str]] = {}
        self._answered_by: dict[str, str] = {}
        # Calls whose register failed: CrmService logged that failure already (or, for a
        # refused webhook, the problem once), so their finish is skipped without a warning.
        self._unregistered: set[str] = set()
        # Calls being finished now: finish_left_open leaves them alone.
        self._finishing: set[str] = set()

    # -- register and the call card ----------------------------------------------------

    async def register(
        self,
        call: CallInfo,
        *,
        entity: CrmEntity | None,
        lead_source: str | None,
        redirected: bool,
        show: list[str],
    ) -> CrmEntity | None:
        user_id = await self._users.user_of(call.employee) or self._default_user()
        params: dict[str, Any] = {
            "USER_ID": user_id,
            "PHONE_NUMBER": call.phone,
            "LINE_NUMBER": call.line_number,
            "TYPE": TYPE_REDIRECTED if redirected else CALL_TYPES.get(call.direction, 2),
            "CALL_START_DATE": call.started_at.isoformat(),
            # With CRM_CREATE the portal makes a lead for a number it does not know (and
            # none for one it knows), with CRM_SOURCE as its source; numcfg then makes none.
            "CRM_CREATE": 1 if lead_source is not None else 0,
            "SHOW": 0,
            "ADD_TO_CHAT": 1 if call.add_to_chat else 0,
            # Without it, Bitrix24 hands back the CALL_ID of a call registered with the same
            # phone, type and user in the last 30 minutes, merging two real calls.
            "EXTERNAL_CALL_ID": call.call_id,
        }
        if lead_source is not None:
            params["CRM_SOURCE"] = lead_source
        if entity is not None:
            params["CRM_ENTITY_TYPE"] = entity.kind.upper()
            params["CRM_ENTITY_ID"] = entity.id
        self._unregistered.add(call.call_id)
        shown = await self._users.users_of(show)
        if shown:
            # One request instead of two: the card pops up as the phones start ringing.
            answers = await self._batch(
                {
                    "register": ("telephony.externalcall.register", params),
                    "show": (
                        "telephony.externalcall.show",
                        {"CALL_ID": "$result[register][CALL_ID]", "USER_ID": shown},
                    ),
                },
                raise_for=("register",),
            )
            result = answers.get("register")
        else:
            result = await self._rest("telephony.externalcall.register", params)
        if not isinstance(result, dict) or not result.get("CALL_ID"):
            raise CrmError(REASON_BAD_RESPONSE, "telephony.externalcall.register: no CALL_ID")
        remote_id = str(result["CALL_ID"])
        self.remote[call.call_id] = remote_id
        self._registered[call.call_id] = call
        self._rung[call.call_id] = [e for e in show if self._users.user_for(e)]
        self._unregistered.discard(call.call_id)
        await self._save(call, remote_id)
        created = result.get("CRM_CREATED_LEAD")
        if lead_source is not None and result.get("LEAD_CREATION_ERROR"):
            log.warning(
                "call %s: the portal made no lead: %s",
                call.call_id,
                result["LEAD_CREATION_ERROR"],
            )
        if not created:
            return None
        # Its responsible is register's USER_ID for now; finish's USER_ID (the employee who
        # answered) becomes its responsible, as the portal does for leads it created.
        return CrmEntity(kind="lead", id=str(created), name=None, responsible=None)

    async def adopt(self, call: CallInfo, remote_id: str) -> None:
        """A call the portal registered (OnExternalCallStart gives its CALL_ID)."""
        self.remote[call.call_id] = remote_id
        self._registered[call.call_id] = call
        self._rung[call.call_id] = []
        await self._save(call, remote_id)

    async def show(self, call: CallInfo, employees: list[str]) -> None:
        remote_id = self.remote.get(call.call_id)
        users = await self._users.users_of(employees)
        if remote_id is None or not users:
            return
        rung = self._rung.setdefault(call.call_id, [])
        rung.extend(e for e in employees if e not in rung and self._users.user_for(e))
        await self._rest("telephony.externalcall.show", {"CALL_ID": remote_id, "USER_ID": users})
        await self._save(call, remote_id)

    async def hide(self, call: CallInfo, employees: list[str]) -> None:
        remote_id = self.remote.get(call.call_id)
        users = await self._users.users_of(employees)
        if remote_id is None or not users:
            return
        await self._rest("telephony.externalcall.hide", {"CALL_ID": remote_id, "USER_ID": users})

    # -- answer and finish -------------------------------------------------------------

    async def answered(self, call: CallInfo, employee: str) -> None:
        # Bitrix24 has no "answered" method; finish reports who took the call.
        self._answered_by[call.call_id] = employee
        remote_id = self.remote.get(call.call_id)
        if remote_id is not None:
            await self._save(call, remote_id)

    async def finished(
        self,
        call: CallInfo,
        *,
        duration: int,
        disposition: str,
        rating: int | None,
        recording_path: str | None,
    ) -> None:
        remote_id = self.remote.pop(call.call_id, None)
        answered = self._answered_by.pop(call.call_id, None)
        rung = self._rung.pop(call.call_id, [])
        call = self._registered.pop(call.call_id, call)
        failed_register = call.call_id in self._unregistered
        self._unregistered.discard(call.call_id)
        if remote_id is None:
            (log.debug if failed_register else log.warning)(
                "call %s was never registered in Bitrix24; not finishing it", call.call_id
            )
            return
        self._finishing.add(call.call_id)
        try:
            params = await self._finish_params(
                call,
                remote_id,
                employee=answered or (rung[0] if rung else None),
                duration=duration,
                disposition=disposition,
                rating=rating,
            )
            try:
                await self._rest("telephony.externalcall.finish", params)
            except CrmError:
                await self._count_attempt(call.call_id)  # finish_left_open tries again
                raise
            await self._forget(call.call_id)
        finally:
            self._finishing.discard(call.call_id)
        if recording_path:
            await upload_recording(self._rest, remote_id, Path(recording_path), self._upload)

    async def _finish_params(
        self,
        call: CallInfo,
        remote_id: str,
        *,
        employee: str | None,
        duration: int,
        disposition: str,
        rating: int | None,
    ) -> dict[str, Any]:
        status = STATUS_CODES.get(disposition, "OTHER")
        params: dict[str, Any] = {
            "CALL_ID": remote_id,
            # Also the responsible of a lead the portal made for this call: the employee
            # who answered, else the first one whose phone rang.
            "USER_ID": await self._users.user_of(employee or call.employee) or self._default_user(),
            "DURATION": max(0, int(duration)),
            "STATUS_CODE": status,
            "ADD_TO_CHAT": 1 if call.add_to_chat else 0,
        }
        if status != "200":
            params["FAILED_REASON"] = FAILED_REASONS.get(disposition, disposition)
        if rating is not None:
            params["VOTE"] = rating
        return params

    # -- CALL_IDs in the store -----------------------------------------------------------

    async def _save(self, call: CallInfo, remote_id: str) -> None:
        if self._store is None:
            return
        call = self._registered.get(call.call_id, call)
        info = {
            "call": call.as_json(),
            "rung": self._rung.get(call.call_id, []),
            "answered_by": self._answered_by.get(call.call_id),
        }
        try:
            await asyncio.to_thread(
                self._store.crm.open_call,
                call_id=call.call_id,
                remote_id=remote_id,
                node=self._node,
                info=info,
            )
        except Exception as exc:  # the store down must not lose the journal in memory
            log.warning(
                "call %s: its Bitrix24 CALL_ID not kept in the store: %s", call.call_id, exc
            )

    async def _forget(self, call_id: str) -> None:
        if self._store is None:
            return
        try:
            await asyncio.to_thread(self._store.crm.finish_call, call_id)
        except Exception as exc:
            log.warning(
                "call %s: finished in Bitrix24, still listed in the store: %s", call_id, exc
            )

    async def _count_attempt(self, call_id: str) -> None:
        if self._store is None:
            return
        try:
            await asyncio.to_thread(self._store.crm.count_call_attempt, call_id)
        except Exception as exc:
            log.debug("call %s: attempt not counted: %s", call_id, exc)

    async def finish_left_open(self) -> int:
        """Finish the calls this node registered and never finished (a restart, a portal
        down at the time), with the details the store has; returns how many."""
        if self._store is None:
            return 0
        left = await asyncio.to_thread(self._store.crm.open_calls, self._node)
        done = 0
        first_error: CrmError | None = None
        for row in left:
            if row.call_id in self.remote or row.call_id in self._finishing:
                continue  # in progress here, or being finished right now
            if row.attempts >= LEFT_OPEN_MAX_ATTEMPTS:
                log.error("call %s: Bitrix24 never took its finish; giving up on it", row.call_id)
                await self._forget(row.call_id)
                continue
            try:
                await self._finish_left(row.call_id, row.remote_id, row.info)
            except CrmError as exc:
                first_error = first_error or exc
                continue
            done += 1
        if first_error is not None:
            raise first_error  # counted and logged once by CrmService
        return done

    async def _finish_left(self, call_id: str, remote_id: str, info: Mapping[str, Any]) -> None:
        assert self._store is not None
        call = CallInfo.from_json(info["call"])
        details = await asyncio.to_thread(self._store.calls.get, call_id)
        rung = list(info.get("rung") or [])
        employee = info.get("answered_by") or (details.employee if details else None)
        params = await self._finish_params(
            call,
            remote_id,
            employee=employee or (rung[0] if rung else None),
            duration=(details.duration or 0) if details else 0,
            disposition=details.disposition.value
            if details is not None and details.disposition is not None
            else "failed",
            rating=details.rating if details else None,
        )
        self._finishing.add(call_id)
        try:
            await self._rest("telephony.externalcall.finish", params)
        except CrmError:
            await self._count_attempt(call_id)
            raise
        finally:
            self._finishing.discard(call_id)
        await self._forget(call_id)
        log.info("call %s: finished in Bitrix24 after a restart", call_id)
