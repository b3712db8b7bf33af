"""Which employees are on a call, so nobody is rung twice at once.

With a shared store (PostgreSQL, several nodes) the claim is a row every node sees. With
SQLite there is one node by definition, so the claims live in this process: two writes
per conversation fewer on the hot path, same guarantee.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from ...store import STORE_FAULTS, Store

log = logging.getLogger("numcfg.calls")


class Claims(Protocol):
    async def claim(self, employee: str, call_id: str) -> bool: ...
    async def release(self, employee: str, call_id: str) -> None: ...
    async def busy(self) -> set[str]: ...


class MemoryClaims:
    def __init__(self) -> None:
        self._held: dict[str, str] = {}

    async def claim(self, employee: str, call_id: str) -> bool:
        holder = self._held.setdefault(employee, call_id)
        return holder == call_id

    async def release(self, employee: str, call_id: str) -> None:
        if self._held.get(employee) == call_id:
            del self._held[employee]

    async def busy(self) -> set[str]:
        return set(self._held)


class StoreClaims:
    """Claims in the shared store. While it cannot be reached, this node keeps claiming in
    memory (no employee is rung twice by this node; another node could ring them then),
    and those claims are released locally as usual."""

    def __init__(self, store: Store, node: str) -> None:
        self._store = store
        self._node = node
        self._local = MemoryClaims()

    async def claim(self, employee: str, call_id: str) -> bool:
        if employee in await self._local.busy():
            return await self._local.claim(employee, call_id)
        try:
            return await asyncio.to_thread(
                self._store.people.claim, employee, call_id=call_id, node=self._node
            )
        except STORE_FAULTS as exc:
            log.warning("claims: shared store unavailable (%s); claiming on this node", exc)
            return await self._local.claim(employee, call_id)

    async def release(self, employee: str, call_id: str) -> None:
        await self._local.release(employee, call_id)
        try:
            await asyncio.to_thread(self._store.people.release, employee, call_id=call_id)
        except STORE_FAULTS as exc:  # a stale claim expires in the store by itself
            log.warning("claims: release of %s not written: %s", employee, exc)

    async def busy(self) -> set[str]:
        local = await self._local.busy()
        try:
            return local | await asyncio.to_thread(self._store.people.busy)
        except STORE_FAULTS:
            return local


def claims_for(store: Store, node: str) -> Claims:
    return StoreClaims(store, node) if store.shared else MemoryClaims()
