"""/api/crm: the builtin CRM's contacts and leads (SPEC section 6).

With the bitrix24 or webhook backend the remote CRM is the source of truth, so these routes
refuse with 409 rather than show a store that routing does not read.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from asterisk_bridge.config.formats import e164

from .errors import error_response

CONTACT_KINDS = ("contact", "company")


def add_routes(api: web.Application, app_state: Any) -> None:
    store = app_state.services.store

    def builtin_only() -> web.Response | None:
        backend = app_state.config_holder.current.crm.backend
        if backend == "builtin":
            return None
        return error_response(
            409,
            "crm_not_builtin",
            f"the CRM is {backend}: contacts and leads live there, not in numcfg",
        )

    async def add_contact(request: web.Request) -> web.Response:
        if (refused := builtin_only()) is not None:
            return refused
        try:
            body = await request.json()
        except (ValueError, RecursionError):
            return error_response(400, "bad_json", "the body must be a JSON object")
        problem, fields = contact_fields(body, app_state.config_holder.current.employees)
        if problem is not None:
            return error_response(400, problem[0], problem[1])
        contact = await asyncio.to_thread(store.crm.add_contact, **fields)
        return web.json_response(contact.to_json(), status=201)

    async def list_contacts(_request: web.Request) -> web.Response:
        if (refused := builtin_only()) is not None:
            return refused
        contacts = await asyncio.to_thread(store.crm.contacts)
        return web.json_response({"contacts": [contact.to_json() for contact in contacts]})

    async def list_leads(_request: web.Request) -> web.Response:
        if (refused := builtin_only()) is not None:
            return refused
        leads = await asyncio.to_thread(store.crm.leads)
        return web.json_response({"leads": [lead.to_json() for lead in leads]})

    api.router.add_post("/api/crm/contacts", add_contact)
    api.router.add_get("/api/crm/contacts", list_contacts)
    api.router.add_get("/api/crm/leads", list_leads)


def contact_fields(body: Any, employees: Any) -> tuple[tuple[str, str] | None, dict[str, Any]]:
    """((code, message), {}) for a bad contact, else (None, store.crm.add_contact keywords).

    Shared with `numcfg crm import`, so a CSV row and an API call are judged alike.
    """
    if not isinstance(body, dict):
        return ("bad_json", "the body must be a JSON object"), {}
    unknown = sorted(set(body) - {"name", "phone", "responsible", "kind"})
    if unknown:
        return ("unknown_field", f"unknown field(s): {', '.join(unknown)}"), {}
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        return ("bad_name", "name: required, a non-empty string"), {}
    phone = body.get("phone")
    try:
        if not isinstance(phone, str):
            raise ValueError("phone: required, an E.164 number such as +33185000000")
        e164(phone)
    except ValueError as exc:
        return ("bad_phone", f"phone: {exc}"), {}
    responsible = body.get("responsible")
    if responsible is not None and (
        not isinstance(responsible, str) or responsible not in employees
    ):
        return ("unknown_employee", f"responsible: no employee {responsible!r}"), {}
    kind = body.get("kind", "contact")
    if kind not in CONTACT_KINDS:
        return ("bad_kind", f"kind: one of {', '.join(CONTACT_KINDS)}"), {}
    fields = {"name": name.strip(), "phone": phone, "responsible": responsible, "kind": kind}
    return None, fields
