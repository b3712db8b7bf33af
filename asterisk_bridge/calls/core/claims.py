"""Which employees are on a call, so nobody is rung twice at once.

With a shared store (PostgreSQL, several nodes) the claim is a row every node sees. With
SQLite there is one node by definition, so the claims live in this process: two writes
per conversation fewer on the hot path, same guarantee.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from ...store import Store


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
    def __init__(self, store: Store, node: str) -> None:
        self._store = store
        self._node = node

    async def claim(self, employee: str, call_id: str) -> bool:
        return await asyncio.to_thread(
            self._store.people.claim, employee, call_id=call_id, node=self._node
        )

    async def release(self, employee: str, call_id: str) -> None:
        await asyncio.to_thread(self._store.people.release, employee, call_id=call_id)

    async def busy(self) -> set[str]:
        return await asyncio.to_thread(self._store.people.busy)


def claims_for(store: Store, node: str) -> Claims:
    return StoreClaims(store, node) if store.shared else MemoryClaims()
