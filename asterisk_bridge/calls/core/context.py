"""What a call coroutine may use. Built once by app.py; each call gets the config that was
current when it started (a reload never changes a call in progress)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from ...ari.client import AriClient
from ...ari.router import EventRouter
from ...store import STORE_FAULTS
from ...wakeup import Wakeup
from .claims import Claims, MemoryClaims
from .journal import Journal

if TYPE_CHECKING:
    from ...config import ConfigHolder
    from ...crm import CrmService
    from ...metrics import Metrics
    from ...store import CallDetails, Store
    from ..queue import QueueState
    from .conversation import Conversation


log = logging.getLogger("numcfg.calls")


class CallObserver(Protocol):
    """Something that follows every call's life (the CRM journal): registered by app.py,
    so the call engine does not import what observes it."""

    async def employee_answered(self, call: Any, employee_id: str) -> None: ...
    async def finished(self, call: Any, details: CallDetails) -> None: ...
    # These employees' phones ring for the call now / stopped ringing, not taken.
    async def ringing(self, call: Any, employee_ids: list[str]) -> None: ...
    async def not_taken(self, call: Any, employee_ids: list[str]) -> None: ...
    # The call goes out to an external number (`employee_id`'s mobile, or None).
    async def forwarding(self, call: Any, employee_id: str | None) -> None: ...


class CallObserverBase:
    """Every hook of CallObserver as a no-op: an observer overrides the ones it needs,
    and a hook added later does not break the observers that have no use for it."""

    async def employee_answered(self, call: Any, employee_id: str) -> None:
        return None

    async def finished(self, call: Any, details: CallDetails) -> None:
        return None

    async def ringing(self, call: Any, employee_ids: list[str]) -> None:
        return None

    async def not_taken(self, call: Any, employee_ids: list[str]) -> None:
        return None

    async def forwarding(self, call: Any, employee_id: str | None) -> None:
        return None


@dataclass(kw_only=True)
class Runtime:
    """What changes while the app runs, shared by the calls of this node. Kept apart from
    the dependencies below, which are set once by app.py."""

    # Call coroutines in progress (and callback attempts), so a drain can wait for them.
    active: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    # SIGTERM received: new inbound calls go to the backup branch, no new callback job.
    draining: bool = False
    # Waiting lines per queue on this node, first come first served.
    queues: dict[str, QueueState] = field(default_factory=dict)
    # Kept places (virtual hold) per queue, shared by every node through the store: job id
    # -> when its caller joined the line. Refreshed from the store by the held-places
    # worker and updated at once by what this node does (calls/virtual_hold.py).
    held: dict[str, dict[str, datetime]] = field(default_factory=dict)
    # Set by what queues work for the node's job workers (wakeup.py): a callback job
    # (the journal's write, the API, an attempt that failed and is due again), a kept
    # place (virtual hold).
    callbacks_queued: Wakeup = field(default_factory=Wakeup)
    held_queued: Wakeup = field(default_factory=Wakeup)
    # What the call engine last read from the store, used while it cannot be read.
    last_workdays: dict[str, str] = field(default_factory=dict)
    cursors: dict[str, int] = field(default_factory=dict)
    # Queue calls each employee let ring out in a row, on this node (auto_pause_after).
    unanswered: dict[str, int] = field(default_factory=dict)
    # Conversations in progress by call id: where a transfer asked over the API goes.
    conversations: dict[str, Conversation] = field(default_factory=dict)


@dataclass(kw_only=True)
class Services:
    """The dependencies of every call, plus the node's `runtime` state."""

    client: AriClient
    router: EventRouter
    config_holder: ConfigHolder
    store: Store
    metrics: Metrics
    node: str
    # Calls in progress are noted in the store under this key (host and ARI app: two
    # nodes on one host never close each other's calls).
    journal_node: str = ""
    crm: CrmService | None = None
    observers: tuple[CallObserver, ...] = ()
    # Sets an employee's workday from a feature code (admin.set_workday, given by app.py:
    # the engine does not import the admin layer).
    set_workday: Callable[..., Any] | None = None
    claims: Claims = field(default_factory=lambda: MemoryClaims())
    # Tests fix the clock to check working hours and quota months deterministically.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    runtime: Runtime = field(default_factory=Runtime)
    # Every store write of the call engine goes through it, in order, off the calls' path.
    journal: Journal

    @property
    def active(self) -> dict[str, asyncio.Task[Any]]:
        return self.runtime.active

    @property
    def draining(self) -> bool:
        return self.runtime.draining

    @property
    def queues(self) -> dict[str, QueueState]:
        return self.runtime.queues

    async def workdays(self) -> dict[str, str]:
        """Employees' workday states for skip_absent_employees: numcfg's own (the store,
        or what was last read from it while it cannot be read), overridden by the CRM's
        work day when `crm.workday: bitrix24` (a cached answer, never a wait)."""
        runtime = self.runtime
        states = dict(await self.db_or(runtime.last_workdays, self.store.people.workdays))
        runtime.last_workdays = dict(states)
        portal = self.crm.portal_workdays() if self.crm is not None else None
        if portal:
            states.update(portal)
        return states

    async def db(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run a (short, sync) store method off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def db_or(self, fallback: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """db(), for the decisions a call can take without the store: a locked, read-only
        or unreachable store gives `fallback` (what the call knows in memory) instead of
        failing the call."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except STORE_FAULTS as exc:
            log.warning("store unavailable for %s: %s", getattr(fn, "__name__", fn), exc)
            return fallback
