"""POST /api/calls/{id}/transfer (SPEC section 8): hand a caller in conversation on.

Everything is checked before the answer, so a refused request changes nothing: 404 for a
call numcfg never saw, 409 for a call that is not in conversation on this node (ringing,
ended, outgoing, or a transfer already under way), 400 for a target that is no one or is
outside the allowlist. An accepted one answers 202: the transfer's result lands in the
call's `transfers` when it is known.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ..calls.features.transfer import directory
from ..policy.transfer import TargetError, TransferMode, resolve_target
from .admin_support import json_object
from .errors import ApiError

# complete / cancel act on an attended transfer whose consultation is going on.
_FOLLOW_UPS = ("complete", "cancel")


def add_routes(api: web.Application, app_state: Any) -> None:
    services = app_state.services

    async def known_call(call_id: str) -> bool:
        def lookup() -> bool:
            if services.store.calls.get(call_id) is not None:
                return True
            return any(c.id == call_id for c in services.store.calls.in_progress())

        return await asyncio.to_thread(lookup)

    async def transfer(request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        body = await json_object(request)
        mode = body.get("mode", TransferMode.BLIND.value)
        if mode not in (*TransferMode, *_FOLLOW_UPS):
            raise ApiError(400, "bad_mode", "mode: expected blind, attended, complete or cancel")
        to = body.get("to", "")
        if mode not in _FOLLOW_UPS and (not isinstance(to, str) or not to):
            raise ApiError(
                400,
                "bad_target",
                "to: expected an employee id, an extension, queue:<id> or an E.164 number",
            )
        conversation = services.runtime.conversations.get(call_id)
        if conversation is None:
            if await known_call(call_id):
                raise ApiError(409, "not_in_conversation", "the call is not in conversation")
            raise ApiError(404, "not_found", "no such call")
        if not conversation.transferable:
            raise ApiError(409, "not_transferable", "only incoming calls are transferred")
        if mode in _FOLLOW_UPS:
            if not conversation.consulting:
                raise ApiError(409, "no_consultation", "no attended transfer is in consultation")
            conversation.ask("", mode)
            return web.json_response({"call": call_id, "mode": mode}, status=202)
        if conversation.busy:
            raise ApiError(409, "transfer_in_progress", "a transfer of this call is under way")
        try:
            target = resolve_target(to, directory(conversation.call))
        except TargetError as exc:
            raise ApiError(400, exc.problem.value, str(exc)) from exc
        conversation.ask(to, mode)
        return web.json_response(
            {"call": call_id, "to": to, "target": target.label, "mode": mode}, status=202
        )

    api.router.add_post("/api/calls/{call_id}/transfer", transfer)
