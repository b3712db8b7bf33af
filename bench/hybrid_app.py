"""The floor of the "ARI for decisions only" design (issue 15), measured by run.py's
`--hybrid` variant: a minimal decision app, not numcfg.

The flow is the benchmark's (greeting, IVR, "1", the employee answers and talks 2 s), run
by generated dialplan (context `numcfg-bench-hybrid` in run.py): Asterisk plays the
prompts, collects the digit and dials; the call enters this app only where numcfg has
to decide something:

1. `Stasis(...,start)`: the call is known (numcfg: number state, hours, the route). The
   app subscribes to the caller's channel, so it still hears of the caller's hangup and
   of the Dial's progress once the channel is back in the dialplan, and lets it go on.
2. `Stasis(...,digit,<d>)`: the option's target. The app claims the employee (in
   memory), sets the dial string in one variable and lets the dialplan dial it.
3. Nothing after an answered Dial: the dialplan hangs up; the app learns the outcome
   from the caller's Dial events (ANSWER) and its ChannelDestroyed, where it releases
   the claim and closes the call's record (kept in memory: no store in this floor).

`Stasis(...,digit-ari,<d>)` (context `numcfg-bench-hybrid-ari`, run.py's `hybrid-ari`
variant) keeps the caller in the app instead and connects it as numcfg does: the
employee's leg originated into the app, ringback played to the caller, both put in a
mixing bridge once the leg answers, the caller hung up and the bridge destroyed when the
employee hangs up. It splits the floor: prompts in dialplan, the conversation in ARI
(where numcfg's conversation features live).

`bench/capacity.py --hybrid` ramps both under rising load on the lines of bench/load.py
(line_employee below: each number rings its own line's employee).

It uses numcfg's own ARI client (REST over the event websocket, orjson) and uvloop, and
the same event filter as numcfg, so what it costs is what those decisions cost at least.
What it leaves out is what numcfg does beyond them (call records in a store, metrics,
the conversation's features): see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from asterisk_bridge.ari.client import AriClient  # noqa: E402
from asterisk_bridge.ari.errors import AriError  # noqa: E402
from asterisk_bridge.ari.events import USED_EVENT_TYPES  # noqa: E402
from asterisk_bridge.ari.playback_stop import stop_playback_surely  # noqa: E402
from asterisk_bridge.event_loop import run_event_loop  # noqa: E402

APP = "numcfg-bench-hybrid"


@dataclass
class CallState:
    own_employee: str  # the line's employee extension
    started: float = field(default_factory=time.monotonic)
    employee: str | None = None
    answered: bool = False
    leg: str | None = None
    bridge: str | None = None
    tone: str | None = None


def line_employee(exten: str) -> str:
    """The employee of a bench line (bench/load.py's numbering): lines 1-99 are
    +33185009901.. with employees 101.., each further block of 100 takes the number
    prefix one down and the employee hundreds one up (+33185009800 -> 200)."""
    block = 99 - int(exten[-4:-2])
    return f"{block + 1}{exten[-2:]}"


class HybridApp:
    def __init__(self, client: AriClient, employee_context: str) -> None:
        self.client = client
        self.employee_context = employee_context
        self.calls: dict[str, CallState] = {}
        self.claimed: set[str] = set()
        self.finished = 0
        self.answered = 0
        self.legs: dict[str, str] = {}  # leg channel id -> caller channel id
        self.counter = 0

    async def on_event(self, event: dict[str, object]) -> None:
        kind = event.get("type")
        channel = event.get("channel") or {}
        assert isinstance(channel, dict)
        cid = str(channel.get("id", ""))
        if kind == "StasisStart":
            args = [str(a) for a in event.get("args") or []]  # type: ignore[union-attr]
            await self.decide(cid, channel, args)
        elif kind == "Dial":
            caller = event.get("caller") or {}
            assert isinstance(caller, dict)
            call = self.calls.get(str(caller.get("id", "")))
            if call is not None and event.get("dialstatus") == "ANSWER":
                call.answered = True
        elif kind == "ChannelDestroyed" and cid in self.legs:
            await self.leg_gone(self.legs.pop(cid))
        elif kind == "ChannelDestroyed" and cid in self.calls:
            call = self.calls.pop(cid)
            if call.employee is not None:
                self.claimed.discard(call.employee)
            self.finished += 1
            self.answered += call.answered

    async def decide(self, cid: str, channel: dict[str, object], args: list[str]) -> None:
        try:
            match args:
                case ["start", *_]:
                    dialplan = channel.get("dialplan") or {}
                    assert isinstance(dialplan, dict)
                    self.calls[cid] = CallState(
                        own_employee=line_employee(str(dialplan.get("exten", "")))
                    )
                    await self.client.request(
                        "POST",
                        f"/applications/{APP}/subscription",
                        params={"eventSource": f"channel:{cid}"},
                    )
                    await self.client.continue_in_dialplan(cid)
                case ["digit", "1", *_] if cid in self.calls:
                    employee = self.claim(self.calls[cid])
                    if employee is None:
                        await self.client.hangup(cid)
                        return
                    await self.client.set_variable(
                        cid, "HYBRID_TARGET", f"Local/{employee}@{self.employee_context}"
                    )
                    await self.client.continue_in_dialplan(cid)
                case ["digit-ari", "1", *_] if cid in self.calls:
                    await self.connect_in_ari(cid, self.calls[cid])
                case ["leg", caller] if caller in self.calls:
                    await self.bridge(caller, self.calls[caller], cid)
                case _:
                    await self.client.hangup(cid)
        except AriError:
            pass  # the caller is gone: its ChannelDestroyed closes the call

    def new_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{os.getpid()}-{self.counter}"

    def claim(self, call: CallState) -> str | None:
        """The option's employee (the line's own), claimed for `call`; None when busy."""
        employee = call.own_employee
        if employee in self.claimed:
            return None
        self.claimed.add(employee)
        call.employee = employee
        return employee

    async def connect_in_ari(self, cid: str, call: CallState) -> None:
        employee = self.claim(call)
        if employee is None:
            await self.client.hangup(cid)
            return
        call.leg = self.new_id("leg")
        self.legs[call.leg] = cid
        # The tone first: a leg answering at once (these Local employees do) must find it
        # there to stop, as in numcfg, whose call flow does one thing at a time.
        call.tone = self.new_id("pb")
        await self.client.play(cid, "tone:ring", playback_id=call.tone)
        await self.client.originate(
            endpoint=f"Local/{employee}@{self.employee_context}",
            channel_id=call.leg,
            app_args=f"leg,{cid}",
            timeout=20,
            originator=cid,
        )

    async def bridge(self, cid: str, call: CallState, leg: str) -> None:
        call.answered = True
        if call.tone is not None:
            # numcfg's stop: Asterisk refuses a stop that lands while the tone is
            # starting, and the tone left playing blocks the bridge (ari/playback_stop.py).
            await stop_playback_surely(self.client, call.tone)
        call.bridge = self.new_id("br")
        # As numcfg's conversation: DTMF events on, the employee's digits absorbed.
        await self.client.create_bridge(call.bridge, kind="mixing,dtmf_events")
        await self.client.add_to_bridge(call.bridge, [cid, leg], absorb_dtmf=True)

    async def leg_gone(self, cid: str) -> None:
        call = self.calls.get(cid)
        with contextlib.suppress(AriError):
            await self.client.hangup(cid)
        if call is not None and call.bridge is not None:
            with contextlib.suppress(AriError):
                await self.client.destroy_bridge(call.bridge)


async def run(args: argparse.Namespace) -> int:
    client = AriClient(base_url=args.ari_url, username=args.user, password=args.password, app=APP)
    app = HybridApp(client, args.employee_context)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ws_url = args.ari_url.replace("http", "ws", 1) + f"/events?app={APP}"
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(ws_url, headers={"Authorization": client.auth_header})
        reader = asyncio.create_task(read(ws, client, app))
        if await client.websocket_rest_works(ws):
            client.attach_websocket(ws)
        await client.set_event_filter(USED_EVENT_TYPES)
        print("hybrid: ready", flush=True)
        await stop.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close()
    await client.close()
    print(f"hybrid: {app.finished} calls finished, {app.answered} answered", flush=True)
    return 0


async def read(ws: aiohttp.ClientWebSocketResponse, client: AriClient, app: HybridApp) -> None:
    tasks: set[asyncio.Task[None]] = set()
    async for msg in ws:
        if msg.type is not aiohttp.WSMsgType.TEXT:
            continue
        event = orjson.loads(msg.data)
        if event.get("type") == "RESTResponse":
            client.resolve(event)
            continue
        # One task per event, as a request inside a handler waits for its answer, which
        # this same reader delivers.
        task = asyncio.get_running_loop().create_task(app.on_event(event))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ari-url", default="http://127.0.0.1:8088/ari")
    parser.add_argument("--user", default=os.environ.get("NUMCFG_ARI_USER", "numcfg"))
    parser.add_argument(
        "--password", default=os.environ.get("NUMCFG_ARI_PASSWORD", "numcfg-dev-secret")
    )
    parser.add_argument("--employee-context", default="numcfg-bench-employees")
    args = parser.parse_args()
    return run_event_loop(run(args))


if __name__ == "__main__":
    sys.exit(main())
