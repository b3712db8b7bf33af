"""/bitrix24/events: what a Bitrix24 local application (crm.auth: app) is sent.

The portal POSTs form data (`event`, `data[...]`, `auth[...]`): ONAPPINSTALL with the
application's first OAuth tokens, and ONEXTERNALCALLSTART when an employee clicks a phone
number in the CRM. It is outside /api (the portal has no numcfg token): an install is kept
only once oauth.bitrix.info confirms its tokens, and an event only when it carries the
application_token the install gave.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .errors import error_response

log = logging.getLogger("numcfg.api")

# "data[PHONE_NUMBER]" -> ("data", "PHONE_NUMBER")
_FIELD = re.compile(r"^(\w+)\[(\w+)\]$")
# A form from the portal is a few hundred bytes.
MAX_EVENT_BYTES = 64 * 1024


def event_fields(form: Mapping[str, str]) -> dict[str, Any]:
    """The portal's form as {"event": ..., "data": {...}, "auth": {...}}."""
    out: dict[str, Any] = {}
    for key, value in form.items():
        found = _FIELD.match(key)
        if found:
            out.setdefault(found.group(1), {})[found.group(2)] = value
        else:
            out[key] = value
    return out


def add_routes(api: web.Application, app_state: Any) -> None:
    async def events(request: web.Request) -> web.Response:
        settings = app_state.config_holder.current.crm
        if settings.backend != "bitrix24" or settings.auth != "app":
            return error_response(404, "not_found", "no Bitrix24 local application here")
        if request.content_length is not None and request.content_length > MAX_EVENT_BYTES:
            return error_response(413, "too_large", "an event is a small form")
        fields = event_fields(await request.post())
        event = str(fields.get("event", "")).upper()
        auth = fields.get("auth") if isinstance(fields.get("auth"), dict) else {}
        data = fields.get("data") if isinstance(fields.get("data"), dict) else {}
        crm = app_state.crm
        if event == "ONAPPINSTALL":
            if not await crm.install_app(auth):
                return error_response(403, "install_refused", "the install was not confirmed")
            await app_state.set_up_portal()
            return web.json_response({"status": "installed"})
        if not await crm.is_portal_event(auth):
            return error_response(403, "unknown_sender", "not an event of this application")
        if event == "ONEXTERNALCALLSTART":
            return await _call_start(app_state, data)
        return web.json_response({"status": "ignored"})

    api.router.add_post("/bitrix24/events", events)


async def _call_start(app_state: Any, data: Mapping[str, str]) -> web.Response:
    employee = await app_state.crm.employee_of_user(data.get("USER_ID"))
    phone = str(data.get("PHONE_NUMBER") or "")
    remote_id = str(data.get("CALL_ID") or "")
    if employee is None or not phone or not remote_id:
        log.warning("OnExternalCallStart for user %r: no such employee", data.get("USER_ID"))
        return error_response(
            400, "bad_event", "USER_ID must be an employee's and PHONE_NUMBER, CALL_ID given"
        )
    app_state.click_to_call(
        employee_id=employee, phone=phone, line=data.get("LINE_NUMBER") or None, remote_id=remote_id
    )
    return web.json_response({"status": "calling"})
