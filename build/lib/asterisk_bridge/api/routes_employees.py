"""/api/employees: employees and their workday state (SPEC section 6)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import admin
from ..lifecycle import workday_action_for_state
from .admin_support import json_object, run_admin
from .errors import ApiError


def add_routes(api: web.Application, app_state: Any) -> None:
    store = app_state.services.store

    async def list_employees(_request: web.Request) -> web.Response:
        config = app_state.config_holder.current
        employees = await run_admin(admin.employee_views, config, store)
        return web.json_response({"employees": employees})

    async def set_workday(request: web.Request) -> web.Response:
        body = await json_object(request)
        if "state" not in body:
            raise ApiError(400, "bad_state", 'missing "state": working, paused or ended')
        # Validated before the employee lookup: a malformed request is 400 whoever it names.
        action = await run_admin(workday_action_for_state, body["state"])
        config = app_state.config_holder.current
        employee = await run_admin(
            admin.set_workday, store, config, request.match_info["employee_id"], action
        )
        return web.json_response(employee)

    api.router.add_get("/api/employees", list_employees)
    api.router.add_post("/api/employees/{employee_id}/workday", set_workday)
