"""StasisStart dispatch: the first app argument names the entry point (SPEC section 2)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Coroutine
from typing import Any

from ..ari.errors import AriError
from ..ari.events import Event, StasisStart
from ..logs import current_call
from ..policy.types import Direction, Disposition
from .core.call import Call
from .core.context import Services
from .core.details import CallRecord
from .inbound.flow import run_inbound
from .outbound import run_outbound
from .workday import run_workday

log = logging.getLogger("numcfg.calls")

# StasisStart arguments of channels numcfg creates for a call in progress: one that
# reaches the dispatcher arrived after its call released it.
STRAY_KINDS = frozenset({"leg", "callback"})


class Dispatcher:
    def __init__(self, services: Services) -> None:
        self.services = services

    def on_unrouted(self, event: Event) -> None:
        """Called by the websocket reader for events no call owns (new calls)."""
        match event:
            case StasisStart(channel=channel, args=args) if args:
                self._start(event, args)
            case StasisStart(channel=channel):
                log.warning("channel %s entered Stasis without arguments", channel.id)
                self._spawn(self._hangup_only(channel.id), channel.id)
            case _:
                pass

    def _start(self, event: StasisStart, args: list[str]) -> None:
        kind, rest = args[0], args[1:]
        channel = event.channel
        if kind in STRAY_KINDS:
            # A leg whose call is over (e.g. the second answer of an all_at_once ring):
            # not a call of its own, so no record; just let it go.
            log.info("hanging up stray %s channel %s", kind, channel.id)
            self._spawn(self._hangup_only(channel.id), channel.id)
            return
        if self.services.draining and kind == "inbound":
            # Shutting down: send new calls to the dialplan's backup branch.
            self._spawn(self._to_backup(channel.id), channel.id)
            return
        config = self.services.config_holder.current
        record = CallRecord(
            id=uuid.uuid4().hex,
            number=None,
            direction=Direction.INCOMING if kind == "inbound" else Direction.OUTGOING,
            caller=channel.caller_number,
            callee=channel.exten,
        )
        call = Call(services=self.services, channel_id=channel.id, record=record, config=config)
        match kind:
            case "inbound" if rest:
                flow = run_inbound(call, rest[0])
            case "workday" if rest:
                call.persist = False  # a feature code is not a call with a client
                flow = run_workday(call, rest[0], channel)
            case "outbound" if rest:
                flow = run_outbound(call, rest[0], rest[1] if len(rest) > 1 else None, channel)
            case _:
                log.warning("unsupported Stasis arguments %r on %s", args, channel.id)
                record.disposition = Disposition.FAILED
                flow = _noop()
        self.services.metrics.call_started()
        self._spawn(self._run(call, flow), channel.id)

    async def _run(self, call: Call, flow: Coroutine[Any, Any, None]) -> None:
        current_call.set(call.record.id)  # this task's context: its log records say so
        record = call.record
        # %r: caller IDs and dialed strings are the caller's text (no newline reaches a log).
        log.info(
            "call %s: started, %s from %r to %r",
            record.id,
            record.direction.value,
            record.caller,
            record.callee,
        )
        try:
            await call.note_progress()
            await flow
        except Exception:
            log.exception("call %s failed", call.record.id)
            call.record.disposition = call.record.disposition or Disposition.FAILED
        finally:
            await call.cleanup()

    def _spawn(self, coro: Coroutine[Any, Any, None], channel_id: str) -> None:
        # One task per call (not per event); tracked so shutdown can wait for it.
        task = asyncio.get_running_loop().create_task(coro)
        self.services.active[channel_id] = task
        task.add_done_callback(lambda _t: self.services.active.pop(channel_id, None))

    async def _hangup_only(self, channel_id: str) -> None:
        with contextlib.suppress(AriError):
            await self.services.client.hangup(channel_id)

    async def _to_backup(self, channel_id: str) -> None:
        try:
            await self.services.client.set_variable(channel_id, "NUMCFG_BACKUP", "1")
            await self.services.client.continue_in_dialplan(channel_id)
        except AriError:
            pass


async def _noop() -> None:
    return None
