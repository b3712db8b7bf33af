"""Schedules (the working hours numbers point to), queues and employees."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .. import admin
from ..config.schema import HolidayCalendar
from .auth import require
from .fields import DAYS
from .render import render
from .save import SaveResult, read_source, root_field_of, save
from .state import state_of
from .yamledit import DELETE, Edit


def _schedule_form_names(config: Any) -> list[str]:
    names = []
    for sid in config.schedules:
        base = f"schedules.{sid}"
        names += [f"{base}.timezone", f"{base}.holidays"]
        names += [f"{base}.week.{day}" for day in DAYS]
    return names


async def _schedules_page(
    request: web.Request,
    *,
    result: SaveResult | None = None,
    form: Mapping[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    session = require(request, "admin", "supervisor")
    app_state = state_of(request).app_state
    config = app_state.config_holder.current
    source = await asyncio.to_thread(read_source, app_state.config_holder, app_state.services.store)
    schedules = []
    for sid, schedule in config.schedules.items():
        calendar = schedule.holidays if isinstance(schedule.holidays, HolidayCalendar) else None
        days = calendar.dates if calendar else schedule.holidays
        schedules.append(
            {
                "id": sid,
                "timezone": schedule.timezone,
                "week": dict(schedule.week),
                "holidays": ", ".join(days),
                "country": calendar.country if calendar else None,
            }
        )
    typed = dict(form) if form is not None and result is not None and not result.saved else None
    return render(
        request,
        "schedules.html",
        status=status,
        schedules=schedules,
        days=DAYS,
        typed=typed,
        errors=result.errors if result else {},
        result=result,
        digest=source.digest,
        editable=session.role == "admin",
    )


async def schedules_page(request: web.Request) -> web.Response:
    return await _schedules_page(request)


def schedule_edits(config: Any, form: Mapping[str, str]) -> list[Edit]:
    edits: list[Edit] = []
    for sid, schedule in config.schedules.items():
        base = ("schedules", sid)
        zone = form.get(f"schedules.{sid}.timezone")
        if zone is not None and zone.strip() and zone.strip() != schedule.timezone:
            edits.append(((*base, "timezone"), zone.strip()))
        for day in DAYS:
            raw = form.get(f"schedules.{sid}.week.{day}")
            if raw is None:
                continue
            raw = raw.strip()
            if raw != schedule.week.get(day, ""):
                edits.append(((*base, "week", day), raw if raw else DELETE))
        raw_days = form.get(f"schedules.{sid}.holidays")
        if raw_days is None:
            continue
        days = [d for d in (part.strip() for part in raw_days.split(",")) if d]
        if isinstance(schedule.holidays, HolidayCalendar):
            if days != list(schedule.holidays.dates):
                edits.append(((*base, "holidays", "dates"), days))
        elif days != list(schedule.holidays):
            edits.append(((*base, "holidays"), days))
    return edits


async def save_schedules(request: web.Request) -> web.Response:
    require(request, "admin")
    app_state = state_of(request).app_state
    config = app_state.config_holder.current
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    result = await save(
        app_state.config_holder,
        app_state.services.store,
        schedule_edits(config, form),
        base_digest=form.get("_base"),
        field_of=root_field_of(_schedule_form_names(config)),
    )
    if result.saved and not result.errors:
        raise web.HTTPSeeOther("/console/schedules?saved=1")
    return await _schedules_page(
        request, result=result, form=form, status=409 if result.conflict else 422
    )


async def people_page(request: web.Request) -> web.Response:
    require(request, "admin", "supervisor")
    app_state = state_of(request).app_state
    config = app_state.config_holder.current
    employees = await asyncio.to_thread(admin.employee_views, config, app_state.services.store)
    details = {
        e["id"]: e
        | {
            "endpoint": config.employees[e["id"]].endpoint,
            "mobile": config.employees[e["id"]].mobile,
        }
        for e in employees
    }
    queues = [
        {
            "id": qid,
            "members": list(q.members),
            "distribution": str(q.distribution),
            "ring_time": q.ring_time,
            "max_wait": q.max_wait,
            "fallback": q.fallback.model_dump(exclude_none=True),
        }
        for qid, q in config.queues.items()
    ]
    return render(request, "people.html", queues=queues, employees=list(details.values()))


def add_routes(console: web.Application) -> None:
    console.router.add_get("/schedules", schedules_page)
    console.router.add_post("/schedules", save_schedules)
    console.router.add_get("/people", people_page)
