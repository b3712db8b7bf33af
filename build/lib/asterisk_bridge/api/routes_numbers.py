"""/api/numbers: settings, status and the lifecycle (disconnect, undo, reconnect)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .. import admin
from .admin_support import json_object, run_admin
from .errors import ApiError


def add_routes(api: web.Application, app_state: Any) -> None:
    store = app_state.services.store

    def config() -> Any:
        # Read per request: a reload between two requests is seen by the second.
        return app_state.config_holder.current

    async def list_numbers(_request: web.Request) -> web.Response:
        numbers = await run_admin(admin.number_views, config(), store, _now())
        return web.json_response({"numbers": numbers})

    async def get_number(request: web.Request) -> web.Response:
        number_id = request.match_info["number_id"]
        return web.json_response(
            await run_admin(admin.number_view, config(), store, number_id, _now())
        )

    async def disconnect(request: web.Request) -> web.Response:
        number_id = request.match_info["number_id"]
        return web.json_response(
            await run_admin(admin.disconnect_number, store, config(), number_id, _now())
        )

    async def undo(request: web.Request) -> web.Response:
        body = await json_object(request)
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise ApiError(400, "bad_token", 'missing "token": the one in the admin email')
        number_id = request.match_info["number_id"]
        return web.json_response(
            await run_admin(admin.undo_disconnect, store, config(), number_id, token, _now())
        )

    async def reconnect(request: web.Request) -> web.Response:
        number_id = request.match_info["number_id"]
        return web.json_response(
            await run_admin(admin.reconnect_number, store, config(), number_id, _now())
        )

    api.router.add_get("/api/numbers", list_numbers)
    api.router.add_get("/api/numbers/{number_id}", get_number)
    api.router.add_post("/api/numbers/{number_id}/disconnect", disconnect)
    api.router.add_post("/api/numbers/{number_id}/undo", undo)
    api.router.add_post("/api/numbers/{number_id}/reconnect", reconnect)


def _now() -> datetime:
    return datetime.now(UTC)
