"""Numbers: the list, one number's settings screen, its hold music and its lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import BodyPartReader, web

from .. import admin
from ..holdmusic import MAX_BYTES, HoldMusicError, HoldMusicRejected, too_large, upload_hold_music
from ..lifecycle import LifecycleError
from .auth import CSRF_FIELD, MULTIPART_CHECKS_ITSELF, csrf_ok, require
from .fields import ACTION_KEYS, ACTION_KINDS, ALL_FIELDS, SECTIONS, shown_value, value_at
from .render import render
from .save import SaveResult, number_edits, number_field_of, read_source, save
from .state import state_of

# Read past the limit only to say how big the file was, then stop.
_CHUNK: Final = 64 * 1024
_ACTION_INPUTS: Final = ("action", "queue", "menu", "employee", "to", "message")
# Every form field name of the page (an action is one fieldset of several inputs).
FORM_NAMES: Final = tuple(f.path for f in ALL_FIELDS) + tuple(
    f"{f.path}.{key}" for f in ALL_FIELDS if f.kind == "action" for key in _ACTION_INPUTS
)


def _now() -> datetime:
    return datetime.now(UTC)


async def numbers_page(request: web.Request) -> web.Response:
    require(request, "admin", "supervisor")
    app_state = state_of(request).app_state
    config = app_state.config_holder.current
    views = await asyncio.to_thread(admin.number_views, config, app_state.services.store, _now())
    return render(request, "numbers.html", numbers=views)


def _references(config: Any) -> dict[str, list[str]]:
    # Offered as <datalist> suggestions; any text may still be typed (and is validated).
    sounds = sorted(
        {n.routing.greeting for n in config.numbers.values() if n.routing.greeting}
        | {f"sound:numcfg/{lang}/welcome" for lang in ("en", "fr")}
    )
    return {
        "queues": list(config.queues),
        "ivr_menus": list(config.ivr_menus),
        "schedules": list(config.schedules),
        "employees": list(config.employees),
        "sounds": sounds,
    }


async def _number_page(
    request: web.Request,
    number_id: str,
    *,
    result: SaveResult | None = None,
    form: Mapping[str, str] | None = None,
    notice: str | None = None,
    problem: str | None = None,
    status: int = 200,
) -> web.Response:
    session = require(request, "admin", "supervisor")
    app_state = state_of(request).app_state
    config = app_state.config_holder.current
    store = app_state.services.store
    try:
        view = await asyncio.to_thread(admin.number_view, config, store, number_id, _now())
    except admin.NotFound:
        raise web.HTTPNotFound() from None
    source = await asyncio.to_thread(read_source, app_state.config_holder, store)
    settings = view["settings"]
    # After a refused save the page shows what was typed, so nothing is lost.
    values = (
        dict(form)
        if form is not None and result is not None and not result.saved and not result.conflict
        else None
    )
    return render(
        request,
        "number.html",
        status=status,
        number_id=number_id,
        view=view,
        sections=SECTIONS,
        shown=lambda f: shown_value(f, settings),
        typed=values,
        settings=settings,
        action_kinds=ACTION_KINDS,
        action_values=_action_values(settings),
        saved=bool(request.query.get("saved")) and result is None,
        refs=_references(config),
        result=result,
        errors=result.errors if result else {},
        notice=notice,
        problem=problem,
        digest=source.digest,
        editable=session.role == "admin",
        upload=await asyncio.to_thread(store.hold_music.upload_path, number_id),
    )


def _action_values(settings: Mapping[str, Any]) -> dict[str, str]:
    """The action fields' values, by form name (`working_hours.after_hours.queue`)."""
    values: dict[str, str] = {}
    for fld in ALL_FIELDS:
        if fld.kind != "action":
            continue
        action = value_at(settings, fld.path) or {}
        values[f"{fld.path}.action"] = str(action.get("action", ""))
        for key in ACTION_KEYS.get(action.get("action", ""), ()):
            if action.get(key) is not None:
                values[f"{fld.path}.{key}"] = str(action[key])
    return values


async def number_page(request: web.Request) -> web.Response:
    return await _number_page(request, request.match_info["number_id"])


async def save_number(request: web.Request) -> web.Response:
    require(request, "admin")
    number_id = request.match_info["number_id"]
    app_state = state_of(request).app_state
    config = app_state.config_holder.current
    if number_id not in config.numbers:
        raise web.HTTPNotFound()
    # Checkboxes post a hidden "false" then, when ticked, "true": the last one counts.
    posted = await request.post()
    form: dict[str, str] = {}
    for key in set(posted):
        values = [v for v in posted.getall(key) if isinstance(v, str)]
        if values:
            form[key] = values[-1]
    current = config.numbers[number_id].model_dump(mode="json")
    edits = number_edits(number_id, form, current)
    result = await save(
        app_state.config_holder,
        app_state.services.store,
        edits,
        base_digest=form.get("_base"),
        field_of=number_field_of(number_id, FORM_NAMES),
    )
    if result.saved and not result.errors:
        raise web.HTTPSeeOther(f"/console/numbers/{number_id}?saved=1")
    status = 409 if result.conflict else 422
    return await _number_page(request, number_id, result=result, form=form, status=status)


async def lifecycle(request: web.Request) -> web.Response:
    require(request, "admin")
    number_id = request.match_info["number_id"]
    action = request.match_info["action"]
    app_state = state_of(request).app_state
    config = app_state.config_holder.current
    store = app_state.services.store
    form = await request.post()
    now = _now()
    try:
        if action == "disconnect":
            view = await asyncio.to_thread(admin.disconnect_number, store, config, number_id, now)
        elif action == "undo":
            token = str(form.get("token", "")).strip()
            view = await asyncio.to_thread(
                admin.undo_disconnect, store, config, number_id, token, now
            )
        elif action == "reconnect":
            view = await asyncio.to_thread(admin.reconnect_number, store, config, number_id, now)
        else:
            raise web.HTTPNotFound()
    except admin.NotFound:
        raise web.HTTPNotFound() from None
    except LifecycleError as exc:
        return await _number_page(request, number_id, problem=exc.message, status=exc.status)
    return await _number_page(request, number_id, notice=f"status:{view['status']}")


async def upload_music(request: web.Request) -> web.Response:
    session = require(request, "admin")
    number_id = request.match_info["number_id"]
    app_state = state_of(request).app_state
    config = app_state.config_holder.current
    if number_id not in config.numbers:
        raise web.HTTPNotFound()
    try:
        data = await _read_form_upload(request, lambda token: csrf_ok(session, token))
        result = await upload_hold_music(
            config, app_state.services.store, number_id, data, app_state.services.client
        )
    except PermissionError:
        return render(request, "error.html", status=403, message_key="error.csrf")
    except HoldMusicRejected as exc:
        return await _number_page(request, number_id, problem=exc.message, status=exc.status)
    except HoldMusicError as exc:
        return await _number_page(request, number_id, problem=str(exc), status=500)
    notice = "uploaded" if not result.warnings else "uploaded:" + "; ".join(result.warnings)
    return await _number_page(request, number_id, notice=notice)


setattr(upload_music, MULTIPART_CHECKS_ITSELF, True)


async def _read_form_upload(request: web.Request, token_ok: Any) -> bytes:
    """The form's `file`, after its `csrf_token` (which the form puts first)."""
    refused = HoldMusicRejected(400, "bad_request", "expected a form with an MP3 file")
    if not request.content_type.startswith("multipart/"):
        raise refused
    reader = await request.multipart()
    first = await reader.next()
    if not isinstance(first, BodyPartReader) or first.name != CSRF_FIELD:
        raise PermissionError("no CSRF token before the file")
    if not token_ok((await first.read(decode=True)).decode(errors="replace")):
        raise PermissionError("wrong CSRF token")
    while (part := await reader.next()) is not None:
        if isinstance(part, BodyPartReader) and part.name == "file":
            kept, size = bytearray(), 0
            while chunk := await part.read_chunk(_CHUNK):
                size += len(chunk)
                if size <= MAX_BYTES:
                    kept += chunk
                elif size > 8 * MAX_BYTES:
                    break
            if size > MAX_BYTES:
                raise too_large(size)
            return bytes(kept)
        await part.release()
    raise refused


def add_routes(console: web.Application) -> None:
    console.router.add_get("/numbers", numbers_page)
    console.router.add_get("/numbers/{number_id}", number_page)
    console.router.add_post("/numbers/{number_id}", save_number)
    console.router.add_post("/numbers/{number_id}/hold-music", upload_music)
    console.router.add_post("/numbers/{number_id}/{action}", lifecycle)
