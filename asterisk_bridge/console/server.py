"""The web console (SPEC section 11), an aiohttp sub-application under /console/ on the
API's listener. Pages are rendered on the server; the only script is the live board's."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import auth, board, pages_calls, pages_numbers, pages_people
from .state import STATE, ConsoleState

# Forms are small; hold-music uploads (2 MB) are streamed by their handler, not buffered.
MAX_FORM_BYTES = 256 * 1024


def build_console(app_state: Any) -> web.Application:
    console = web.Application(middlewares=[auth.console_middleware], client_max_size=MAX_FORM_BYTES)
    state = ConsoleState(app_state=app_state)
    console[STATE] = state
    console.router.add_get("/", auth.home)
    console.router.add_get("/login", auth.login_page)
    console.router.add_post("/login", auth.login)
    console.router.add_post("/logout", auth.logout)
    for module in (pages_numbers, pages_calls, pages_people, board):
        module.add_routes(console)

    async def end_streams(_app: web.Application) -> None:
        state.closing.set()

    console.on_shutdown.append(end_streams)
    return console


def mount_console(api: web.Application, app_state: Any) -> None:
    async def to_console(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect("/console/")

    api.router.add_get("/console", to_console)
    api.add_subapp("/console/", build_console(app_state))
