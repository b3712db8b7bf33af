"""Bitrix24 users as numcfg employees: who is who (inner phone numbers), and whose work day
is open on the portal (timeman).

Both are read in the background and cached: a call never waits for the portal to learn
who an employee is or whether she works. Until the first answer comes, an employee is who
her `crm_user_id` says, and her work day is numcfg's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from asterisk_bridge.config.schema import Employee
from asterisk_bridge.policy.types import Workday

from .base import CrmError

log = logging.getLogger("numcfg.crm.bitrix24")

# Portal users change rarely (a new hire, a new inner number): re-read every ten minutes.
USERS_TTL_S = 600.0
# user.get answers 50 users a page; a portal with more than 2,500 active users is past
# what one numcfg node serves, so the read stops there.
USERS_PAGE = 50
USERS_MAX_PAGES = 50
# A work day is opened or paused by hand on the portal: an employee who pauses is skipped
# within half a minute, and a queue of waiting callers costs one batch request per 30 s.
WORKDAYS_TTL_S = 30.0
# timeman.status reads one user; `batch` takes at most 50 commands per request.
BATCH_MAX = 50
# timeman's STATUS as numcfg's workday: EXPIRED is a day opened yesterday and never closed,
# which is no work day today.
TIMEMAN_STATES = {
    "OPENED": Workday.WORKING.value,
    "PAUSED": Workday.PAUSED.value,
    "CLOSED": Workday.ENDED.value,
    "EXPIRED": Workday.ENDED.value,
}

Rest = Callable[..., Awaitable[Any]]
Batch = Callable[..., Awaitable[dict[str, Any]]]


class PortalUsers:
    """The portal users whose inner number (UF_PHONE_INNER) is an employee's extension."""

    def __init__(
        self,
        *,
        rest: Rest,
        employees: Callable[[], Mapping[str, Employee]],
        ttl: float = USERS_TTL_S,
    ) -> None:
        self._rest = rest
        self._employees = employees
        self._ttl = ttl
        self._by_inner: dict[str, str] = {}  # inner number -> portal user id
        self._read_at: float | None = None
        self._refresh: asyncio.Task[None] | None = None

    async def ensure(self) -> None:
        """Read the users when never read or stale; one read at a time, shared by all the
        callers waiting for it, and never raising (the last map stays)."""
        if self._read_at is not None and time.monotonic() - self._read_at < self._ttl:
            return
        if not self._wanted():
            return
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.ensure_future(self._read())
        with contextlib.suppress(Exception):
            await asyncio.shield(self._refresh)

    def _wanted(self) -> bool:
        # Only employees without crm_user_id are matched by number: without any, no
        # request (and no `user` scope) is needed.
        return any(e.crm_user_id is None for e in self._employees().values())

    async def _read(self) -> None:
        by_inner: dict[str, str] = {}
        try:
            for page in range(USERS_MAX_PAGES):
                users = await self._rest(
                    "user.get", {"FILTER": {"ACTIVE": True}, "start": page * USERS_PAGE}
                )
                if not isinstance(users, list):
                    break
                for user in users:
                    if not isinstance(user, dict):
                        continue
                    inner = str(user.get("UF_PHONE_INNER") or "").strip()
                    if inner and user.get("ID") is not None:
                        by_inner.setdefault(inner, str(user["ID"]))
                if len(users) < USERS_PAGE:
                    break
        except CrmError as exc:
            log.warning("portal users not read (%s); employees keep their crm_user_id", exc)
            self._read_at = time.monotonic()  # retried after the usual pause, not per call
            raise
        self._by_inner = by_inner
        self._read_at = time.monotonic()

    async def user_of(self, employee_id: str | None) -> str | None:
        """user_for(), reading the portal's users first when she has no crm_user_id."""
        employee = self._employees().get(employee_id) if employee_id else None
        if employee is not None and employee.crm_user_id is None:
            await self.ensure()
        return self.user_for(employee_id)

    async def users_of(self, employee_ids: list[str]) -> list[str]:
        """The portal users of these employees (those that have one), without repeats."""
        users = [await self.user_of(e) for e in employee_ids]
        return list(dict.fromkeys(u for u in users if u is not None))

    async def employee_of(self, user_id: Any) -> str | None:
        """employee_for(), reading the portal's users first when no crm_user_id matches."""
        found = self.employee_for(user_id)
        if found is None and user_id not in (None, "") and self._wanted():
            await self.ensure()
            found = self.employee_for(user_id)
        return found

    def user_for(self, employee_id: str | None) -> str | None:
        """The portal user of an employee: her crm_user_id, else the user whose inner
        number is her extension (as last read), else None."""
        if employee_id is None:
            return None
        employee = self._employees().get(employee_id)
        if employee is None:
            return None
        if employee.crm_user_id is not None:
            return employee.crm_user_id
        return self._by_inner.get(employee.extension)

    def employee_for(self, user_id: Any) -> str | None:
        """The employee a portal user is, or None."""
        if user_id is None or user_id == "":
            return None
        wanted = str(user_id)
        for employee_id in self._employees():
            if self.user_for(employee_id) == wanted:
                return employee_id
        return None


class PortalWorkdays:
    """Employees' work days as the portal's timeman has them, read in one batch request
    in the background; `states()` answers at once from the last read."""

    def __init__(
        self,
        *,
        batch: Batch,
        users: PortalUsers,
        employees: Callable[[], Mapping[str, Employee]],
        ttl: float = WORKDAYS_TTL_S,
    ) -> None:
        self._batch = batch
        self._users = users
        self._employees = employees
        self._ttl = ttl
        self._states: dict[str, str] = {}
        self._read_at: float | None = None
        self._refresh: asyncio.Task[None] | None = None
        # Said once while it lasts (a missing timeman scope would otherwise be a warning
        # every 30 s), and once when it is over.
        self._failing: str | None = None

    def states(self) -> dict[str, str]:
        """{employee: working|paused|ended} for the employees the portal answered for;
        starts a new read when the last one is older than the TTL, without waiting."""
        stale = self._read_at is None or time.monotonic() - self._read_at >= self._ttl
        if stale and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.ensure_future(self._read())
        return dict(self._states)

    async def refreshed(self) -> dict[str, str]:
        """states(), after waiting for the read in progress (tests, first start)."""
        self.states()
        if self._refresh is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._refresh)
        return dict(self._states)

    async def _read(self) -> None:
        self._read_at = time.monotonic()  # a failed read is retried after the TTL too
        try:
            await self._users.ensure()
            users = {
                employee_id: user
                for employee_id in self._employees()
                if (user := self._users.user_for(employee_id)) is not None
            }
            states: dict[str, str] = {}
            ids = list(users)
            for start in range(0, len(ids), BATCH_MAX):
                chunk = ids[start : start + BATCH_MAX]
                answers = await self._batch(
                    {e: ("timeman.status", {"USER_ID": users[e]}) for e in chunk}
                )
                for employee_id in chunk:
                    answer = answers.get(employee_id)
                    status = answer.get("STATUS") if isinstance(answer, dict) else None
                    state = TIMEMAN_STATES.get(str(status or "").upper())
                    if state is not None:
                        states[employee_id] = state
        except CrmError as exc:
            if self._failing != str(exc):
                log.warning("portal work days not read (%s); the last ones stay", exc)
            self._failing = str(exc)
            return
        except Exception:
            log.exception("portal work days not read")
            return
        if self._failing is not None:
            log.info("portal work days read again")
            self._failing = None
        self._states = states
        self._read_at = time.monotonic()
