"""Call details: the list with filters, one call (route, rating, transcript, recording).

An employee sees only the calls she took (`employee` in the details is her); any other
call, and its recording, is a 403 for her, whatever the URL says.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from aiohttp import web

from ..api.routes_calls import recording_path
from ..policy.types import Direction, Disposition
from ..store import CallDetails
from .auth import require
from .render import render
from .state import state_of

# One page of the list; the filters narrow it.
LIST_LIMIT: Final = 200
ROLES: Final = ("admin", "supervisor", "employee")


def _may_see(session: Any, call: CallDetails) -> bool:
    return session.role != "employee" or (
        session.employee is not None and call.employee == session.employee
    )


def _since(text: str, timezone: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=ZoneInfo(timezone))


async def calls_page(request: web.Request) -> web.Response:
    session = require(request, *ROLES)
    app_state = state_of(request).app_state
    config = app_state.config_holder.current
    store = app_state.services.store
    query = request.query
    number = query.get("number") or None
    since = _since(query["since"], config.account.timezone) if query.get("since") else None
    calls = await asyncio.to_thread(store.calls.in_progress, number=number, since=since)
    calls += await asyncio.to_thread(
        store.calls.recent, number=number, since=since, limit=LIST_LIMIT
    )
    wanted = {
        "direction": query.get("direction") or None,
        "disposition": query.get("disposition") or None,
        "employee": query.get("employee") or None,
    }
    shown = [
        call
        for call in calls
        if _may_see(session, call)
        and (wanted["direction"] is None or call.direction.value == wanted["direction"])
        and (
            wanted["disposition"] is None
            or (call.ended_at is not None and call.disposition.value == wanted["disposition"])
        )
        and (wanted["employee"] is None or call.employee == wanted["employee"])
    ]
    shown.sort(key=lambda c: (c.started_at, c.id), reverse=True)
    return render(
        request,
        "calls.html",
        calls=[_row(call, config) for call in shown[:LIST_LIMIT]],
        numbers=list(config.numbers),
        employees=list(config.employees),
        directions=[d.value for d in Direction],
        dispositions=[d.value for d in Disposition],
        query=dict(query),
        own_employee=session.employee if session.role == "employee" else None,
    )


def _row(call: CallDetails, config: Any) -> dict[str, Any]:
    row = call.to_json()
    zone = ZoneInfo(config.account.timezone)
    row["started_local"] = call.started_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
    row["in_progress"] = call.ended_at is None
    return row


async def _visible_call(request: web.Request) -> tuple[CallDetails, Any]:
    session = require(request, *ROLES)
    app_state = state_of(request).app_state
    call_id = request.match_info["call_id"]
    store = app_state.services.store
    call = await asyncio.to_thread(store.calls.get, call_id)
    if call is None:
        open_calls = await asyncio.to_thread(store.calls.in_progress)
        call = next((c for c in open_calls if c.id == call_id), None)
    if call is None:
        raise web.HTTPNotFound()
    if not _may_see(session, call):
        raise web.HTTPForbidden()
    return call, app_state


async def call_page(request: web.Request) -> web.Response:
    call, app_state = await _visible_call(request)
    return render(request, "call.html", call=_row(call, app_state.config_holder.current))


async def recording(request: web.Request) -> web.StreamResponse:
    call, app_state = await _visible_call(request)
    file = (call.recording or {}).get("file")
    if not file:
        raise web.HTTPNotFound()
    folder = app_state.config_holder.current.storage.recordings
    path = await asyncio.to_thread(recording_path, folder, file)
    if path is None:
        raise web.HTTPNotFound()
    # FileResponse answers Range requests, which the <audio> element uses to seek.
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


def add_routes(console: web.Application) -> None:
    console.router.add_get("/calls", calls_page)
    console.router.add_get("/calls/{call_id}", call_page)
    console.router.add_get("/calls/{call_id}/recording", recording)
