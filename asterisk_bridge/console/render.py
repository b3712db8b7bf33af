"""Server-rendered pages: one Jinja2 environment, autoescaped, and the page context."""

from __future__ import annotations

import functools
import secrets
from typing import Any

import jinja2
from aiohttp import web

from .i18n import LANG_COOKIE, LANGUAGES, language_of, translator
from .sessions import SESSION, Session, behind_tls


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("asterisk_bridge.console", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,  # a misspelt variable fails the test, not the page
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    lang = language_of(request)
    nonce = secrets.token_urlsafe(16)
    session: Session | None = request.get(SESSION)
    html = (
        environment()
        .get_template(template)
        .render(
            t=translator(lang),
            lang=lang,
            other_lang=next(code for code in LANGUAGES if code != lang),
            session=session,
            csrf=session.csrf if session else "",
            path=request.path,
            nonce=nonce,
            **context,
        )
    )
    response = web.Response(text=html, content_type="text/html", status=status)
    response.headers["Cache-Control"] = "no-store"
    # Only this response's own style and script run; no framing (clickjacking), forms post
    # only here, and media, events and fetches stay on this origin.
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.query.get("lang") in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            lang,
            path="/console/",
            samesite="Strict",
            httponly=True,
            secure=behind_tls(request),
            max_age=365 * 86400,
        )
    return response
