"""The builtin CRM: contacts and leads kept in numcfg's own store.

The store is synchronous (SQLAlchemy), so every call goes through a worker thread to keep
the event loop, and with it every other call, responsive.
"""

from __future__ import annotations

import asyncio

from asterisk_bridge.store import Contact, Lead, Store

from .base import CallInfo, CrmEntity, LeadResult, TranscriptInfo


class BuiltinCrm:
    # The store is the CRM: there is no remote journal to report calls to, so the service
    # skips the three background journal tasks per call.
    keeps_journal = False

    def __init__(self, *, store: Store) -> None:
        self._store = store

    async def lookup(self, phone: str) -> CrmEntity | None:
        contact = await asyncio.to_thread(self._store.crm.contact, phone)
        if contact is not None:
            return _contact_entity(contact)
        lead = await asyncio.to_thread(self._store.crm.lead, phone)
        return None if lead is None else _lead_entity(lead)

    async def create_lead(
        self, *, phone: str, source: str, responsible: str | None, call: CallInfo
    ) -> LeadResult:
        # A known contact is a client, not a lead: the call is attached to the contact.
        contact = await asyncio.to_thread(self._store.crm.contact, phone)
        if contact is not None:
            return LeadResult(entity=_contact_entity(contact), created=False)
        # The unique phone key decides between two nodes racing for the same new caller.
        lead, created = await asyncio.to_thread(
            self._store.crm.add_lead,
            phone=phone,
            source=source,
            responsible=responsible,
            call_id=call.call_id,
        )
        return LeadResult(entity=_lead_entity(lead), created=created)

    async def assign_lead(self, lead_id: str, employee: str) -> None:
        await asyncio.to_thread(self._store.crm.assign_lead, lead_id, employee)

    # The builtin CRM has no call journal of its own: call details are the calls table.
    async def call_started(
        self, call: CallInfo, *, create_crm: bool, entity: CrmEntity | None = None
    ) -> None:
        return None

    async def call_answered(self, call: CallInfo, employee: str) -> None:
        return None

    async def call_finished(
        self,
        call: CallInfo,
        *,
        duration: int,
        disposition: str,
        rating: int | None,
        recording_path: str | None,
    ) -> None:
        return None

    async def call_transcript(
        self, call: TranscriptInfo, *, entity: CrmEntity | None, text: str
    ) -> None:
        return None  # the transcript is in the call details, which are this CRM's journal

    async def close(self) -> None:
        return None  # the store belongs to the app, which closes it


def _contact_entity(contact: Contact) -> CrmEntity:
    return CrmEntity(
        kind=contact.kind, id=contact.id, name=contact.name, responsible=contact.responsible
    )


def _lead_entity(lead: Lead) -> CrmEntity:
    return CrmEntity(kind="lead", id=lead.id, name=None, responsible=lead.responsible)
