"""HTTP API (SPEC section 6) on aiohttp: health, readiness, metrics and /api."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..console.server import mount_console
from ..store import STORE_FAULTS
from . import (
    routes_bitrix24,
    routes_callbacks,
    routes_calls,
    routes_crm,
    routes_employees,
    routes_holdmusic,
    routes_numbers,
    routes_transfer,
)
from .errors import ApiError, error_response

log = logging.getLogger("numcfg.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# ApiError and error_response live in errors.py; importing them from here still works.
__all__ = ["ApiError", "Handler", "build_api", "error_response"]


def _route_modules() -> list[Any]:
    # Each feature's routes live in their own module with `add_routes(api, app_state)`.
    return [
        routes_calls,
        routes_employees,
        routes_numbers,
        routes_callbacks,
        routes_crm,
        routes_holdmusic,
        routes_transfer,
        routes_bitrix24,
    ]


def build_api(app_state: Any) -> web.Application:
    """`app_state` is the running App (app.py): services, config holder, stream."""

    @web.middleware
    async def errors_and_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            token = app_state.config_holder.current.api.token
            given = request.headers.get("Authorization", "")
            expected = f"Bearer {token}" if token else None
            if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
                return error_response(401, "unauthorized", "missing or wrong bearer token")
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except web.HTTPException as exc:
            if exc.status >= 400:
                return error_response(exc.status, "http_error", exc.reason)
            raise
        except STORE_FAULTS as exc:
            # Locked, read-only, full or unreachable: the request changed nothing.
            log.warning("API %s %s: store unavailable: %s", request.method, request.path, exc)
            return error_response(503, "store_unavailable", "the store cannot be used now")
        except Exception:
            log.exception("API %s %s failed", request.method, request.path)
            return error_response(500, "internal_error", "numcfg failed on this request")

    api = web.Application(middlewares=[errors_and_auth])
    store = app_state.services.store

    async def db(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def ready(_request: web.Request) -> web.Response:
        ari = app_state.stream.connected
        try:
            store_ok = bool(await db(store.ping))
        except Exception:
            store_ok = False
        holder = app_state.config_holder
        config_errors = [str(issue) for issue in (holder.last_error or [])]
        crm_problem = app_state.crm.problem
        missing_sounds = app_state.missing_sounds
        reasons = [
            reason
            for reason in (
                None if ari else "ARI not connected",
                None if store_ok else "store unreachable",
                app_state.journal.degraded,
                f"CRM refuses numcfg: {crm_problem}" if crm_problem else None,
                _missing_sounds_reason(missing_sounds) if missing_sounds else None,
            )
            if reason
        ]
        body = {
            "status": "ok" if not reasons else "degraded",
            "reasons": reasons,
            "ari": ari,
            "store": store_ok,
            # checked: whether Asterisk has answered yet; missing: `sound:` names.
            "sounds": {"checked": missing_sounds is not None, "missing": missing_sounds or []},
            "config": {
                "generation": holder.generation,
                "reload_failed": bool(config_errors),
                "errors": config_errors,
            },
        }
        return web.json_response(body, status=503 if reasons else 200)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(
            body=app_state.services.metrics.render(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    api.router.add_get("/health", health)
    api.router.add_get("/ready", ready)
    api.router.add_get("/metrics", metrics)
    for module in _route_modules():
        module.add_routes(api, app_state)
    mount_console(api, app_state)  # SPEC section 11: /console/, its own login and sessions
    return api


# /ready names this many missing sounds; the body's sounds.missing lists them all.
READY_SOUNDS_NAMED = 5


def _missing_sounds_reason(missing: list[str]) -> str:
    named = ", ".join(missing[:READY_SOUNDS_NAMED])
    more = (
        f" and {len(missing) - READY_SOUNDS_NAMED} more"
        if len(missing) > READY_SOUNDS_NAMED
        else ""
    )
    return f"Asterisk lacks sounds numcfg plays: {named}{more} (numcfg install-asterisk)"
