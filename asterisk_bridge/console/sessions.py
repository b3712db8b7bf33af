"""Console sessions: a random id in a cookie, the state on the server.

Kept in this process's memory: a restart logs everyone out, which is the safe side, and
no secret has to be configured to sign cookies. Anonymous sessions exist only to carry the
login form's CSRF token and are short-lived and capped, so a flood of GETs cannot grow
memory without bound.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

COOKIE: Final = "numcfg_console"
# A desk shift plus some: an operator logs in once a day.
SESSION_IDLE_SECONDS: Final = 12 * 3600.0
# Long enough to type a password; the login page makes a new one when it is gone.
ANONYMOUS_SECONDS: Final = 3600.0
MAX_ANONYMOUS: Final = 10_000
_TOKEN_BYTES: Final = 32


@dataclass
class Session:
    id: str
    csrf: str
    user: str | None = None
    role: str | None = None
    employee: str | None = None
    last_seen: float = field(default_factory=time.monotonic)


class Sessions:
    def __init__(self) -> None:
        self._users: dict[str, Session] = {}
        self._anonymous: OrderedDict[str, Session] = OrderedDict()

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        now = time.monotonic()
        session = self._users.get(session_id) or self._anonymous.get(session_id)
        if session is None:
            return None
        limit = SESSION_IDLE_SECONDS if session.user else ANONYMOUS_SECONDS
        if now - session.last_seen > limit:
            self.drop(session_id)
            return None
        session.last_seen = now
        return session

    def anonymous(self) -> Session:
        session = Session(id=_token(), csrf=_token())
        self._anonymous[session.id] = session
        while len(self._anonymous) > MAX_ANONYMOUS:
            self._anonymous.popitem(last=False)
        return session

    def log_in(self, old: Session | None, *, user: str, role: str, employee: str | None) -> Session:
        """A new session (new id and CSRF token: a session id planted before the login
        is worth nothing after it)."""
        if old is not None:
            self.drop(old.id)
        session = Session(id=_token(), csrf=_token(), user=user, role=role, employee=employee)
        self._users[session.id] = session
        return session

    def drop(self, session_id: str) -> None:
        self._users.pop(session_id, None)
        self._anonymous.pop(session_id, None)

    def drop_user(self, user: str) -> None:
        for sid in [sid for sid, s in self._users.items() if s.user == user]:
            del self._users[sid]


# Where the middleware leaves the request's session (None: not logged in, no form yet).
SESSION: Final = web.RequestKey("console_session", Session)


def _token() -> str:
    return secrets.token_urlsafe(_TOKEN_BYTES)


def behind_tls(request: web.Request) -> bool:
    # The API listens on loopback; TLS is a reverse proxy's, which says so in this header.
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_cookie(response: web.StreamResponse, request: web.Request, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.id,
        path="/console/",
        httponly=True,
        samesite="Strict",
        secure=behind_tls(request),
    )


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/console/")
