"""/api/calls: call details (SPEC section 7), recordings and transcripts (section 10)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from .errors import ApiError


def add_routes(api: web.Application, app_state: Any) -> None:
    store = app_state.services.store

    async def db(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def list_calls(request: web.Request) -> web.Response:
        since_text = request.query.get("since")
        since = None
        if since_text:
            try:
                since = datetime.fromisoformat(since_text)
            except ValueError as exc:
                raise ApiError(
                    400, "bad_since", f"since: not an ISO 8601 time: {since_text!r}"
                ) from exc
            if since.tzinfo is None:  # "since the 1st" means in the account's timezone
                zone = ZoneInfo(app_state.config_holder.current.account.timezone)
                since = since.replace(tzinfo=zone)
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError as exc:
            raise ApiError(400, "bad_limit", "limit: expected an integer") from exc
        if not 1 <= limit <= 1000:
            raise ApiError(400, "bad_limit", "limit: must be between 1 and 1000")
        number = request.query.get("number") or None
        active = request.query.get("active", "").lower()
        if active not in ("", "true", "false"):
            raise ApiError(400, "bad_active", "active: expected true or false")
        # A call in progress is listed with ended_at null (SPEC section 8), newest first.
        calls = await db(store.calls.in_progress, number=number, since=since)
        if active != "true":
            calls += await db(store.calls.recent, number=number, since=since, limit=limit)
            calls.sort(key=lambda c: (c.started_at, c.id), reverse=True)
        return web.json_response({"calls": [call.to_json() for call in calls[:limit]]})

    async def get_call(request: web.Request) -> web.Response:
        call = await db(store.calls.get, request.match_info["call_id"])
        if call is None:
            raise ApiError(404, "not_found", "no such call")
        return web.json_response(call.to_json())

    async def get_recording(request: web.Request) -> web.StreamResponse:
        call = await db(store.calls.get, request.match_info["call_id"])
        if call is None:
            raise ApiError(404, "not_found", "no such call")
        recording = call.recording or {}
        if not recording.get("file"):
            raise ApiError(404, "no_recording", "this call was not recorded")
        folder = app_state.config_holder.current.storage.recordings
        path = await db(_recording_path, folder, recording["file"])
        if path is None:
            raise ApiError(404, "no_recording", "the recording file is missing")
        return web.FileResponse(path, headers={"Content-Type": "audio/wav"})

    async def get_transcript(request: web.Request) -> web.Response:
        call = await db(store.calls.get, request.match_info["call_id"])
        if call is None:
            raise ApiError(404, "not_found", "no such call")
        if call.transcript_status is None:
            raise ApiError(404, "no_transcript", "this call's recording is not transcribed")
        # pending and failed answer too: a script polls this until done (SPEC section 10).
        return web.json_response(
            {
                "id": call.id,
                "transcript_status": call.transcript_status,
                "transcript": call.transcript,
            }
        )

    api.router.add_get("/api/calls", list_calls)
    api.router.add_get("/api/calls/{call_id}", get_call)
    api.router.add_get("/api/calls/{call_id}/recording", get_recording)
    api.router.add_get("/api/calls/{call_id}/transcript", get_transcript)


def _recording_path(folder_text: str, file: str) -> Path | None:
    # Only files inside the recordings folder are ever served, whatever the record says.
    folder = Path(folder_text).resolve()
    path = (folder / Path(file).name).resolve()
    if path.parent != folder or not path.is_file():
        return None
    return path
