"""POST /api/numbers/{id}/hold-music: hold-music upload (SPEC section 6)."""

from __future__ import annotations

import logging
from typing import Any, Final

from aiohttp import BodyPartReader, web

from ..holdmusic import (
    MAX_BYTES,
    HoldMusicError,
    HoldMusicRejected,
    too_large,
    unknown_number,
    upload_hold_music,
)
from .errors import error_response

log = logging.getLogger("numcfg.api")

FIELD: Final = "file"
_CHUNK: Final = 64 * 1024
# Past the limit the body is read and dropped, only to say how big it was; past this too,
# reading stops and the message says "more than".
_MEASURE_UP_TO: Final = 64 * 1024 * 1024


def add_routes(api: web.Application, app_state: Any) -> None:
    async def upload(request: web.Request) -> web.Response:
        # Errors are answered here rather than raised as ApiError so the route behaves the
        # same mounted under build_api's middleware or on its own (tests).
        number_id = request.match_info["number_id"]
        config = app_state.config_holder.current
        if number_id not in config.numbers:
            return _rejected(unknown_number(number_id))
        try:
            data = await _read_upload(request)
            result = await upload_hold_music(
                config, app_state.services.store, number_id, data, app_state.services.client
            )
        except HoldMusicRejected as exc:
            return _rejected(exc)
        except HoldMusicError as exc:
            log.error("hold music for %s: %s", number_id, exc)
            return error_response(500, "conversion_failed", str(exc))
        return web.json_response(result.as_json())

    api.router.add_post("/api/numbers/{number_id}/hold-music", upload)


def _rejected(exc: HoldMusicRejected) -> web.Response:
    return error_response(exc.status, exc.code, exc.message)


async def _read_upload(request: web.Request) -> bytes:
    """The bytes of the multipart field `file`, never holding more than the limit + 1.

    Streams the parts rather than request.post(): that buffers the whole body in memory
    and refuses it past client_max_size with a message that names no rule.
    """
    bad_request = HoldMusicRejected(
        400, "bad_request", f"expected multipart/form-data with the MP3 in a field {FIELD!r}"
    )
    if not request.content_type.startswith("multipart/"):
        raise bad_request
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name != FIELD:
                await part.release()
                continue
            return await _read_limited(part)
    except ValueError as exc:  # a malformed multipart body
        raise bad_request from exc
    raise bad_request


async def _read_limited(part: BodyPartReader) -> bytes:
    kept = bytearray()
    size = 0
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size <= MAX_BYTES:
            kept += chunk
        elif size > _MEASURE_UP_TO:
            raise HoldMusicRejected(
                413, "too_large", f"more than {too_large(_MEASURE_UP_TO).message}"
            )
    if size > MAX_BYTES:
        raise too_large(size)
    return bytes(kept)
