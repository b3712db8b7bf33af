"""Glue between the API and admin.py: run an operator action off the event loop, map refusals.

admin.py's functions do blocking work (store transactions, SMTP), so they run in a thread;
their LifecycleError refusals already carry the HTTP status and code to answer with.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from ..lifecycle import LifecycleError
from .errors import ApiError

T = TypeVar("T")


async def run_admin(fn: Callable[..., T], *args: Any) -> T:
    try:
        return await asyncio.to_thread(fn, *args)
    except LifecycleError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 saying why not."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"the body is not JSON: {exc}") from exc
    except RecursionError as exc:  # nesting deeper than any request of ours needs
        raise ApiError(400, "bad_json", "the body nests too deeply") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return body
