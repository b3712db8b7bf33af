"""Offered load for the capacity run and the soak: callers placed at a rate, watched
through Asterisk's own events.

The driver's ARI app (`numcfg-bench-driver`) owns the callers and connects with
`subscribeAll=true`, so it also receives the events of channels it does not own. On
Asterisk 22.10 that observer sees (checked on the rig, see bench/README.md):

* ChannelDialplan of the caller's far half: `Stasis(numcfg-bench,...)` for the numcfg
  variant (StasisStart itself goes only to numcfg's app), the dialplan's `NoOp` and
  `Playback` for the dialplan variant;
* PlaybackStarted of numcfg's playbacks on that channel;
* ChannelDtmfReceived of the "1" on that channel;
* the employee's Local channel: ChannelDialplan of its `;2` half when Asterisk calls it
  (the moment a phone would ring) and ChannelStateChange `Up` when it answers.

Latencies are differences of Asterisk's event timestamps (millisecond resolution), so
the driver's own scheduling does not enter them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from asterisk_bridge.ari.client import REST_TIMEOUT_SECONDS, AriClient, basic_auth_header
from asterisk_bridge.ari.errors import AriError
from bench.run import (
    ARI_PASSWORD,
    ARI_URL,
    ARI_USER,
    BENCH_CONF,
    CALLER_ID,
    CONTEXT_DIALPLAN,
    DRIVER_APP,
    MAX_SLOTS,
    NUMBER_PREFIX,
    PRESS_AFTER_SECONDS,
    VARIANT_CONTEXTS,
    asterisk_pid,
    bench_config,
    cleanup,
    employee_ext,
    install_dialplan,
    number,
    rig,
    start_hybrid,
    start_numcfg,
    stop_numcfg,
)
from bench.stats import ari_time

# Not numcfg: the floors of the "ARI for decisions only" design (bench/hybrid_app.py),
# offered to the capacity run with --hybrid: the conversation in ARI, or in Dial().
FLOORS = ("hybrid-ari", "hybrid")
# The variants whose prompts the dialplan plays (first media: the Playback()/Background()
# step entered) and whose entry is the first dialplan step in their context.
# (Asterisk names the app as registered: "BackGround".)
DIALPLAN_PROMPTS = {"dialplan": "playback", "hybrid-ari": "background", "hybrid": "background"}
# The observer needs only these; the rest (ChannelVarset above all) would cost Asterisk
# serialisation and the driver parsing, in both variants alike.
OBSERVED_EVENTS = [
    "StasisStart",
    "StasisEnd",
    "ChannelDestroyed",
    "ChannelDialplan",
    "ChannelStateChange",
    "ChannelDtmfReceived",
    "PlaybackStarted",
]
# Lines 1-99 are run.py's (number +33185009901, employee 101...); each further block of
# 100 takes the next number prefix down and employee hundreds up: line 100 is
# +33185009800 and employee 200, line 250 is +33185009750 and employee 350.
MAX_LINES = 899
EMPLOYEE_LEG = re.compile(r"^Local/(\d)(\d{2})@numcfg-bench-employees-[0-9a-f]+;(\d)$")
# An originate answered more than this after its scheduled instant means the driver or
# Asterisk has a backlog: the caller waited before even ringing in.
LATE_SECONDS = 1.0
# Asterisk answers a caller within milliseconds on the rig; 15 s means it never will.
ANSWER_TIMEOUT_SECONDS = 15
# The flow takes ~5.2 s (greeting, prompt, 2.5 s with the employee): 30 s is stuck.
END_TIMEOUT_SECONDS = 30


@dataclass
class Call:
    cid: str
    variant: str
    slot: int
    scheduled: float  # time.time() at which the driver meant to originate
    originated: float | None = None  # when POST /channels answered
    ended: float | None = None
    ok: bool = False
    # The driver's own lateness: the originate answered, or the "1" sent, more than
    # LATE_SECONDS after its instant. A late call is not the offered load.
    late: bool = False
    # Where it went wrong, "" when ok: "not placed: ..." (the driver never got it into
    # Asterisk), else the stage that failed ("answer: ...", "end: ...", "not seen: ...").
    error: str = ""
    answered: float | None = None  # when the driver saw its caller's StasisStart
    digit_sent: float | None = None  # when POST /channels/{id}/dtmf answered
    # Asterisk's timestamps (POSIX seconds) of what the observer saw
    entry_ts: float | None = None  # Stasis() entered (numcfg) / first dialplan app (dialplan)
    media_ts: float | None = None  # PlaybackStarted (numcfg) / Playback() entered (dialplan)
    dtmf_ts: float | None = None  # the "1" received on the far half
    ring_ts: float | None = None  # the employee's phone called
    employee_up: bool = False

    @property
    def placed(self) -> bool:
        """Asterisk took the call: a call never placed is the driver's, not numcfg's."""
        return self.originated is not None

    @property
    def first_media_ms(self) -> float | None:
        if self.entry_ts is None or self.media_ts is None:
            return None
        return round(1000 * (self.media_ts - self.entry_ts), 1)

    @property
    def ring_ms(self) -> float | None:
        if self.dtmf_ts is None or self.ring_ts is None:
            return None
        return round(1000 * (self.ring_ts - self.dtmf_ts), 1)


@dataclass
class Driver:
    client: AriClient
    session: aiohttp.ClientSession
    slots: int
    free: deque[int] = field(default_factory=deque)
    _started: dict[str, asyncio.Event] = field(default_factory=dict)
    _ended: dict[str, asyncio.Event] = field(default_factory=dict)
    _far: dict[str, Call] = field(default_factory=dict)
    _slot_owner: dict[int, Call] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None
    _ws: aiohttp.ClientWebSocketResponse | None = None

    def __post_init__(self) -> None:
        self.free.extend(range(1, self.slots + 1))

    async def start(self) -> None:
        self._ws = await self.session.ws_connect(
            f"ws://127.0.0.1:8088/ari/events?app={DRIVER_APP}&subscribeAll=true",
            headers={"Authorization": self.client.auth_header},
            heartbeat=5,
        )
        self._reader = asyncio.create_task(self._read())
        await self.client.set_event_filter(OBSERVED_EVENTS)

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._ws is not None:
            await self._ws.close()

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self._on_event(orjson.loads(msg.data))

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "PlaybackStarted":
            target = event.get("playback", {}).get("target_uri", "")
            call = self._far.get(target.removeprefix("channel:"))
            if call is not None and call.media_ts is None:
                call.media_ts = ari_time(event["timestamp"])
            return
        channel = event.get("channel") or {}
        cid = channel.get("id", "")
        if kind == "StasisStart" and cid in self._started:
            self._started[cid].set()
        elif kind in ("ChannelDestroyed", "StasisEnd") and cid in self._ended:
            self._ended[cid].set()
        elif (call := self._far.get(cid)) is not None:
            self._on_far(call, kind, event)
        elif (match := EMPLOYEE_LEG.match(channel.get("name", ""))) is not None:
            line = 100 * (int(match.group(1)) - 1) + int(match.group(2))
            call = self._slot_owner.get(line)
            if call is None or call.dtmf_ts is None:
                return  # a leg of an earlier call on this line, or before the digit
            if kind == "ChannelDialplan" and match.group(3) == "2" and call.ring_ts is None:
                call.ring_ts = ari_time(event["timestamp"])
            elif kind == "ChannelStateChange" and channel.get("state") == "Up":
                call.employee_up = True

    @staticmethod
    def _on_far(call: Call, kind: str | None, event: dict[str, Any]) -> None:
        if kind == "ChannelDtmfReceived" and call.dtmf_ts is None:
            call.dtmf_ts = ari_time(event["timestamp"])
        elif kind == "ChannelDialplan":
            app = event.get("dialplan_app")
            context = event["channel"].get("dialplan", {}).get("context")
            prompts = DIALPLAN_PROMPTS.get(call.variant)
            if call.entry_ts is None and (
                app == "Stasis" if prompts is None else context == VARIANT_CONTEXTS[call.variant]
            ):
                call.entry_ts = ari_time(event["timestamp"])
            elif prompts and str(app).lower() == prompts and call.media_ts is None:
                call.media_ts = ari_time(event["timestamp"])

    async def call(self, variant: str, scheduled: float) -> Call:
        """One caller on a free line: dial, wait to be answered, press 1 during the IVR
        prompt, wait for the employee to hang up. No free line is a `late` call."""
        cid = f"bench-{uuid.uuid4().hex[:12]}"
        if not self.free:
            return Call(cid, variant, 0, scheduled, late=True, error="not placed: no free line")
        slot = self.free.popleft()
        call = Call(cid, variant, slot, scheduled)
        started, ended = asyncio.Event(), asyncio.Event()
        self._started[cid], self._ended[cid] = started, ended
        self._far[f"{cid}-far"] = call
        self._slot_owner[slot] = call
        # The stage being waited for, named in the error when it fails.
        stage = "originate"
        try:
            try:
                await self.client.originate(
                    endpoint=f"Local/{line_number(slot)}@{VARIANT_CONTEXTS[variant]}",
                    channel_id=cid,
                    other_channel_id=f"{cid}-far",
                    app=DRIVER_APP,
                    app_args="caller",
                    caller_id=CALLER_ID,
                    timeout=30,
                    formats="ulaw",  # a SIP trunk's G.711, as in bench/run.py
                )
            except AriError as exc:
                # Asterisk refused the caller: numcfg never saw it.
                call.error = f"not placed: originate {exc}"
                return call
            call.originated = time.time()
            call.late = call.originated - scheduled > LATE_SECONDS
            stage = "answer"  # numcfg answers the far half; the caller's StasisStart follows
            await asyncio.wait_for(started.wait(), ANSWER_TIMEOUT_SECONDS)
            call.answered = time.time()
            await asyncio.sleep(PRESS_AFTER_SECONDS)
            stage = "digit"
            await self.client.send_dtmf(cid, "1")
            call.digit_sent = time.time()
            if call.digit_sent - call.answered - PRESS_AFTER_SECONDS > LATE_SECONDS:
                call.late = True  # the "1" after the IVR prompt: the driver's doing
            stage = "end"
            await asyncio.wait_for(ended.wait(), END_TIMEOUT_SECONDS)
            call.ended = time.time()
            missing = [
                what
                for what, seen in (
                    ("entry", call.entry_ts),
                    ("first media", call.media_ts),
                    ("digit", call.dtmf_ts),
                    ("employee called", call.ring_ts),
                    ("employee answered", call.employee_up or None),
                )
                if seen is None
            ]
            call.ok = not missing
            call.error = f"not seen: {', '.join(missing)}" if missing else ""
        except (TimeoutError, AriError) as exc:
            call.ended = time.time()
            call.error = f"{stage}: " + (str(exc) if isinstance(exc, AriError) else "timeout")
            with contextlib.suppress(AriError):
                await self.client.hangup(cid)
        finally:
            self._started.pop(cid, None)
            self._ended.pop(cid, None)
            self._far.pop(f"{cid}-far", None)
            # The line goes to the back of the queue: reused as late as possible, so
            # numcfg has long finished with its employee.
            if self._slot_owner.get(slot) is call:
                del self._slot_owner[slot]
            self.free.append(slot)
        return call

    async def offer(self, variant: str, rate: float, seconds: float) -> list[asyncio.Task[Call]]:
        """Place round(rate x seconds) calls evenly spaced; return at once when the last
        one is placed (the calls go on)."""
        tasks = []
        t0 = time.time()
        for i in range(round(rate * seconds)):
            at = t0 + i / rate
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.call(variant, at)))
        remaining = t0 + seconds - time.time()
        if remaining > 0:
            await asyncio.sleep(remaining)
        return tasks


def line_number(line: int) -> str:
    block, rest = divmod(line, 100)
    return number(line) if block == 0 else f"{NUMBER_PREFIX[:-2]}{99 - block:02d}{rest:02d}"


def line_ext(line: int) -> str:
    block, rest = divmod(line, 100)
    return employee_ext(line) if block == 0 else f"{block + 1}{rest:02d}"


def lines_config(lines: int, data: Path) -> dict[str, Any]:
    """run.py's bench config for min(lines, 99), plus lines 100.. made like its line 1."""
    config = bench_config(min(lines, MAX_SLOTS), data)
    for line in range(MAX_SLOTS + 1, lines + 1):
        e, m, b = f"e{line:02d}", f"m{line:02d}", f"b{line:02d}"
        employee = dict(config["employees"]["e01"], name=f"Employee {line}")
        employee["extension"] = line_ext(line)
        employee["endpoint"] = f"Local/{line_ext(line)}@numcfg-bench-employees"
        config["employees"][e] = employee
        menu = dict(config["ivr_menus"]["m01"])
        menu["options"] = {"1": {"action": "employee", "employee": e}}
        config["ivr_menus"][m] = menu
        config["numbers"][b] = {
            "number": line_number(line),
            "name": f"bench line {line}",
            "routing": dict(config["numbers"]["b01"]["routing"], ivr=m),
        }
    return config


def more_lines_dialplan(installed: str, lines: int) -> str:
    """The dialplan variants' entry for each further block of lines, copied from run.py's
    entry for lines 1-99 (its number pattern and employee hundreds changed), appended to
    their contexts with Asterisk's `[context](+)`."""
    out = []
    for context in (CONTEXT_DIALPLAN, *(VARIANT_CONTEXTS[floor] for floor in FLOORS)):
        section = re.search(
            rf"^\[{re.escape(context)}\]\n(.*?)(?=^\[|\Z)", installed, re.MULTILINE | re.DOTALL
        )
        entry = section and re.search(
            rf"^exten => _{re.escape(NUMBER_PREFIX)}XX,1,.*?(?=^exten => )",
            section.group(1),
            re.MULTILINE | re.DOTALL,
        )
        if not entry:
            raise SystemExit(f"bench: the entry of [{context}] was not found in {BENCH_CONF}")
        blocks = [
            entry.group(0)
            .replace(f"_{NUMBER_PREFIX}XX", f"_{NUMBER_PREFIX[:-2]}{99 - block:02d}XX")
            .replace("BENCH_EMPLOYEE=1${", f"BENCH_EMPLOYEE={block + 1}${{")
            for block in range(1, (lines // 100) + 1)
        ]
        if blocks:
            out.append(f"\n[{context}](+)\n" + "".join(blocks))
    return "".join(out)


def install_lines(root: Path, config_path: Path, lines: int) -> None:
    """run.py's install, then the dialplan variant's further blocks of lines."""
    install_dialplan(root, config_path)
    target = root / "etc" / "asterisk" / BENCH_CONF
    extra = more_lines_dialplan(target.read_text(), lines)
    if extra:
        with target.open("a") as f:
            f.write(extra)
        rig("cli", "dialplan reload")
        shown = rig("cli", f"dialplan show {line_number(lines)}@{CONTEXT_DIALPLAN}")
        if "NoOp" not in shown:
            raise SystemExit(f"bench: line {lines} of the dialplan variant not loaded")


@dataclass
class Bench:
    """The rig side shared by the capacity run and the soak: numcfg running on the bench
    config, the bench dialplan installed, the driver connected."""

    root: Path
    ast_pid: int
    numcfg: subprocess.Popen[bytes]
    driver: Driver
    tmp: Path
    hybrid: subprocess.Popen[bytes] | None = None  # bench/hybrid_app.py, with --hybrid

    def decider_pid(self, variant: str) -> int:
        """The process that takes the variant's decisions: numcfg, or the floor's app
        (the dialplan variant has none: numcfg's idle CPU, subtracted, stands in)."""
        if variant in FLOORS:
            assert self.hybrid is not None, f"the {variant} variant needs bench(hybrid=True)"
            return self.hybrid.pid
        return self.numcfg.pid


@contextlib.asynccontextmanager
async def bench(
    *, slots: int = MAX_SLOTS, keep: bool = False, hybrid: bool = False
) -> AsyncIterator[Bench]:
    if not 1 <= slots <= MAX_LINES:
        raise SystemExit(f"bench: 1..{MAX_LINES} lines")
    try:
        rig("status")
    except subprocess.CalledProcessError:
        raise SystemExit(
            "bench: the rig is down; start it with `docker/rig up` (make rig)"
        ) from None
    root = Path(rig("root").strip())
    tmp = Path(tempfile.mkdtemp(prefix="numcfg-capacity-"))
    config_path = tmp / "numcfg.yaml"
    config_path.write_text(yaml.safe_dump(lines_config(slots, tmp), sort_keys=False))
    install_lines(root, config_path, slots)
    # Hundreds of callers at once: a pool of 32 connections (AriClient's own) or 100
    # (aiohttp's default) would queue the driver's originates behind each other, and the
    # driver, not numcfg, would make the callers wait. So the REST client gets an
    # unlimited pool of its own (with the ARI credentials), the websocket and /metrics
    # another.
    rest = aiohttp.ClientSession(
        headers={"Authorization": basic_auth_header(ARI_USER, ARI_PASSWORD)},
        timeout=aiohttp.ClientTimeout(total=REST_TIMEOUT_SECONDS),
        connector=aiohttp.TCPConnector(limit=0),
    )
    client = AriClient(
        base_url=ARI_URL, username=ARI_USER, password=ARI_PASSWORD, app=DRIVER_APP, session=rest
    )
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    driver = Driver(client=client, session=session, slots=slots)
    proc = await start_numcfg(config_path, tmp / "numcfg.log")
    floor = None
    try:
        floor = start_hybrid(tmp / "hybrid.log") if hybrid else None
        await driver.start()
        yield Bench(root, asterisk_pid(root), proc, driver, tmp, floor)
    finally:
        await cleanup(client)
        stop_numcfg(proc)
        if floor is not None:
            stop_numcfg(floor)
        await driver.stop()
        await client.close()
        await rest.close()
        await session.close()
        if keep or os.environ.get("BENCH_KEEP") == "1":
            print(f"bench: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
