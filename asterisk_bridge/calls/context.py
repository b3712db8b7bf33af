"""What a call coroutine may use. Built once by app.py; each call gets the config that was
current when it started (a reload never changes a call in progress)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..ari.client import AriClient
from ..ari.router import EventRouter
from .claims import Claims, MemoryClaims

if TYPE_CHECKING:
    from ..config import ConfigHolder
    from ..crm import CrmService
    from ..metrics import Metrics
    from ..store import Store


@dataclass(kw_only=True)
class Services:
    client: AriClient
    router: EventRouter
    config_holder: ConfigHolder
    store: Store
    metrics: Metrics
    node: str
    active: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    draining: bool = False
    crm: CrmService | None = None
    claims: Claims = field(default_factory=lambda: MemoryClaims())
    # Waiting lines per queue on this node (calls.queue.QueueState), first come first served.
    queues: dict[str, Any] = field(default_factory=dict)
    # Tests fix the clock to check working hours and quota months deterministically.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def db(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run a (short, sync) store method off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)
