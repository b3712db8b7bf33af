"""Who may do what in the console: the session middleware, CSRF, login and logout."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from .passwords import needs_rehash, rehash, verify_password
from .render import render
from .sessions import COOKIE, SESSION, Session, clear_cookie, set_cookie
from .state import ConsoleState, state_of

log = logging.getLogger("numcfg.console")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "X-CSRF-Token"
# Paths (under /console) that need no login.
PUBLIC: Final = ("/console/login",)
# Multipart uploads check the token themselves (the first part of the body), since the
# middleware would have to buffer the whole file to read a field after it.
MULTIPART_CHECKS_ITSELF: Final = "csrf_checked_by_handler"


def session_of(request: web.Request) -> Session:
    session = request.get(SESSION)
    if session is None or session.user is None:
        raise web.HTTPForbidden()
    return session


def require(request: web.Request, *roles: str) -> Session:
    session = session_of(request)
    if session.role not in roles:
        raise web.HTTPForbidden()
    return session


def csrf_ok(session: Session, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf.encode(), (token or "").encode())


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = state_of(request)
    session = state.sessions.get(request.cookies.get(COOKIE))
    request[SESSION] = session
    try:
        if request.path not in PUBLIC and (session is None or session.user is None):
            if request.method == "GET" and not request.path.endswith("/events"):
                raise web.HTTPSeeOther("/console/login")
            raise web.HTTPForbidden()
        if request.method == "POST" and not _multipart_route(request):
            form = await request.post()
            token = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
            if session is None or not csrf_ok(session, token if isinstance(token, str) else None):
                log.warning(
                    "console: %s %s refused: no valid CSRF token", request.method, request.path
                )
                return render(request, "error.html", status=403, message_key="error.csrf")
        return await handler(request)
    except web.HTTPForbidden:
        return render(request, "error.html", status=403, message_key="error.403")
    except web.HTTPNotFound:
        return render(request, "error.html", status=404, message_key="error.404")


def _multipart_route(request: web.Request) -> bool:
    route = request.match_info.route
    return bool(getattr(route.handler, MULTIPART_CHECKS_ITSELF, False)) and (
        request.content_type.startswith("multipart/")
    )


async def login_page(request: web.Request) -> web.Response:
    state = state_of(request)
    session = request.get(SESSION)
    if session is not None and session.user is not None:
        raise web.HTTPSeeOther("/console/")
    if session is None:
        session = state.sessions.anonymous()
        request[SESSION] = session
    response = render(request, "login.html", failed=False, name="")
    set_cookie(response, request, session)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    state: ConsoleState = state_of(request)
    form = await request.post()
    name = str(form.get("name", "")).strip()
    password = str(form.get("password", ""))
    user_key, address_key = f"user:{name.lower()}", f"addr:{request.remote}"
    delay = state.throttle.delay(user_key, address_key)
    if delay:
        await asyncio.sleep(delay)
    store = state.app_state.services.store
    user = await asyncio.to_thread(store.users.get, name) if name else None
    ok = await asyncio.to_thread(verify_password, user.password_hash if user else None, password)
    if user is None or not ok:
        state.throttle.failed(user_key, address_key)
        log.warning("console: failed login for %r from %s", name, request.remote)
        return render(request, "login.html", status=401, failed=True, name=name)
    state.throttle.succeeded(user_key)
    if needs_rehash(user.password_hash):  # made with weaker parameters than today's
        await asyncio.to_thread(store.users.set_password_hash, user.name, rehash(password))
    session = state.sessions.log_in(
        request.get(SESSION), user=user.name, role=user.role, employee=user.employee
    )
    log.info("console: %s logged in (%s)", user.name, user.role)
    response = web.HTTPSeeOther("/console/")
    set_cookie(response, request, session)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    state_of(request).sessions.drop(session.id)
    response = web.HTTPSeeOther("/console/login")
    clear_cookie(response)
    raise response


async def home(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    target = "/console/calls" if session.role == "employee" else "/console/numbers"
    raise web.HTTPSeeOther(target)
