"""/api/callbacks: request a callback, list the jobs (the scheduler runs them)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .. import admin
from .admin_support import json_object, run_admin
from .errors import ApiError


def add_routes(api: web.Application, app_state: Any) -> None:
    store = app_state.services.store

    async def create(request: web.Request) -> web.Response:
        body = await json_object(request)
        number_id = body.get("number")
        if not isinstance(number_id, str) or not number_id:
            raise ApiError(400, "bad_number", 'missing "number": a number id of the config')
        if "phone" not in body:
            raise ApiError(400, "bad_phone", 'missing "phone": an E.164 number')
        config = app_state.config_holder.current
        job = await run_admin(
            admin.request_callback, store, config, number_id, body["phone"], datetime.now(UTC)
        )
        # Its first attempt is due now: this node's worker takes it at once.
        app_state.services.runtime.callbacks_queued.set()
        return web.json_response(job.to_json(), status=201)

    async def list_callbacks(_request: web.Request) -> web.Response:
        jobs = await asyncio.to_thread(store.callbacks.jobs)
        return web.json_response({"callbacks": [job.to_json() for job in jobs]})

    api.router.add_post("/api/callbacks", create)
    api.router.add_get("/api/callbacks", list_callbacks)
