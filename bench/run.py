"""CPU per call: numcfg (Asterisk + numcfg) against the same flow in pure dialplan.

The flow: the caller dials the number, hears a 1.5 s greeting, then an IVR prompt during
which it presses "1", and is connected to an employee who answers and hangs up after 2 s.

* numcfg variant: `numcfg run` as a separate process (ARI app `numcfg-bench`), reached
  through the `numcfg dialplan` contexts renamed with a `-bench` suffix.
* dialplan variant: Answer / Playback / Read / Dial in context `numcfg-bench-dialplan`.

Both variants use the same callers (Local channels originated into the driver's own ARI
app `numcfg-bench-driver`, DTMF sent over REST) and the same employees (context
`numcfg-bench-employees`: Answer, Wait(2), Hangup), so the difference is numcfg.

CPU is utime+stime of the Asterisk process (all its threads) and of the numcfg process,
read from /proc/<pid>/stat before and after each run. The driver's own CPU is reported
apart. The rig is shared: nothing here stops, restarts or reconfigures it beyond
installing `numcfg-bench.conf` (see README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from asterisk_bridge.ari.client import AriClient  # noqa: E402
from asterisk_bridge.ari.errors import AriError  # noqa: E402

RIG = REPO / "docker" / "rig"
BIN = REPO / ".venv" / "bin"
ARI_URL = "http://127.0.0.1:8088/ari"
ARI_USER = os.environ.get("NUMCFG_ARI_USER", "numcfg")
ARI_PASSWORD = os.environ.get("NUMCFG_ARI_PASSWORD", "numcfg-dev-secret")

NUMCFG_APP = "numcfg-bench"
DRIVER_APP = "numcfg-bench-driver"
API_LISTEN = "127.0.0.1:18190"
# One number, IVR menu and employee per concurrent caller ("slot"): numcfg, rightly,
# does not ring an employee who is already on a call.
NUMBER_PREFIX = "+331850099"  # + two digits: the slot
CALLER_ID = "+33612345678"
MAX_SLOTS = 99
GREETING = "numcfg/en/goodbye"  # 1.45 s
IVR_PROMPT = "numcfg/en/ivr-invalid"  # 3.07 s, interrupted by the "1"
# The "1" is pressed this long after the caller is answered: after the greeting, during
# the IVR prompt, in both variants.
PRESS_AFTER_SECONDS = 2.5
EMPLOYEE_TALK_SECONDS = 2
INCLUDE_LINE = "#tryinclude numcfg-bench.conf"
BENCH_CONF = "numcfg-bench.conf"
CONTEXT_DIALPLAN = "numcfg-bench-dialplan"
CONTEXT_NUMCFG = "numcfg-inbound-bench"
CONTEXT_HYBRID = "numcfg-bench-hybrid"
VARIANT_CONTEXTS = {
    "dialplan": CONTEXT_DIALPLAN,
    "numcfg": CONTEXT_NUMCFG,
    "hybrid": CONTEXT_HYBRID,
    "hybrid-ari": CONTEXT_HYBRID + "-ari",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- /proc ---------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime+stime of a whole process (the thread-group leader's stat sums all threads)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """utime+stime of one thread of `pid` (FileNotFoundError once it has ended)."""
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def loop_thread_cpu_seconds(pid: int) -> float:
    """utime+stime of the main thread alone (numcfg's event loop); the rest of the
    process's CPU is its worker threads (store calls, the config watcher)."""
    return thread_cpu_seconds(pid, pid)


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


# -- rig -------------------------------------------------------------------------------------
def rig(*args: str) -> str:
    env = {**os.environ, "NUMCFG_ARI_PASSWORD": ARI_PASSWORD, "NUMCFG_ARI_USER": ARI_USER}
    result = subprocess.run(
        [str(RIG), *args], env=env, check=True, capture_output=True, text=True, timeout=120
    )
    return result.stdout


def asterisk_pid(root: Path) -> int:
    return int((root / "run" / "asterisk" / "asterisk.pid").read_text().strip())


def number(slot: int) -> str:
    return f"{NUMBER_PREFIX}{slot:02d}"


def employee_ext(slot: int) -> str:
    return f"1{slot:02d}"


def bench_config(slots: int, data: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "asterisk": {
            "ari_url": ARI_URL,
            "username": "${NUMCFG_ARI_USER}",
            "password": "${NUMCFG_ARI_PASSWORD}",
            "app": NUMCFG_APP,
            "trunk": "Local/{number}@numcfg-bench-trunk",
        },
        "api": {"listen": API_LISTEN, "token": "bench-token"},
        "store": f"sqlite:///{data}/numcfg.sqlite3",
        "storage": {
            "recordings": str(data / "recordings"),
            "voicemail": str(data / "voicemail"),
            "hold_music": str(data / "hold-music"),
        },
        "account": {"timezone": "Europe/Paris", "external_allowlist": [], "plan": "professional"},
        "employees": {
            f"e{slot:02d}": {
                "name": f"Employee {slot}",
                "extension": employee_ext(slot),
                "endpoint": f"Local/{employee_ext(slot)}@numcfg-bench-employees",
            }
            for slot in range(1, slots + 1)
        },
        "ivr_menus": {
            f"m{slot:02d}": {
                "prompt": f"sound:{IVR_PROMPT}",
                "first_digit_timeout": 5,
                "retries": 1,
                "options": {"1": {"action": "employee", "employee": f"e{slot:02d}"}},
            }
            for slot in range(1, slots + 1)
        },
        "numbers": {
            f"b{slot:02d}": {
                "number": number(slot),
                "name": f"bench line {slot}",
                "routing": {"greeting": f"sound:{GREETING}", "ivr": f"m{slot:02d}"},
            }
            for slot in range(1, slots + 1)
        },
    }


def bench_dialplan(numcfg_dialplan: str) -> str:
    """numcfg's generated contexts renamed with -bench, plus the dialplan variant and the
    employees shared by both variants."""
    renamed = re.sub(r"\bnumcfg-(inbound|outbound|workday)\b", r"numcfg-\1-bench", numcfg_dialplan)
    ours = f"""
; --- numcfg bench (bench/run.py): installed by the benchmark, safe to delete ----------
; The same flow as the numcfg config, in pure dialplan.
; (The rig loads no app_read: Background + WaitExten is the classic IVR anyway.)
[{CONTEXT_DIALPLAN}]
exten => _{NUMBER_PREFIX}XX,1,NoOp(numcfg bench dialplan)
 same => n,Set(BENCH_EMPLOYEE=1${{EXTEN:-2}})
 same => n,Answer()
 same => n,Playback({GREETING})
 same => n,Background({IVR_PROMPT})
 same => n,WaitExten(5)
 same => n,Hangup()
exten => 1,1,Dial(Local/${{BENCH_EMPLOYEE}}@numcfg-bench-employees,20)
 same => n,Hangup()
exten => i,1,Hangup()
exten => t,1,Hangup()

; The "ARI for decisions only" floor (bench/hybrid_app.py, --hybrid): the same flow with
; the prompts, the digit and the Dial in dialplan, the app deciding at two points.
[{CONTEXT_HYBRID}]
exten => _{NUMBER_PREFIX}XX,1,Stasis(numcfg-bench-hybrid,start)
 same => n,Answer()
 same => n,Background({GREETING}&{IVR_PROMPT})
 same => n,WaitExten(5)
 same => n,Hangup()
exten => _[0-9*#],1,Stasis(numcfg-bench-hybrid,digit,${{EXTEN}})
 same => n,Dial(${{HYBRID_TARGET}},20)
 same => n,Hangup()
exten => i,1,Hangup()
exten => t,1,Hangup()

; The same, the conversation in ARI as numcfg's (--hybrid's second variant).
[{CONTEXT_HYBRID}-ari]
exten => _{NUMBER_PREFIX}XX,1,Stasis(numcfg-bench-hybrid,start)
 same => n,Answer()
 same => n,Background({GREETING}&{IVR_PROMPT})
 same => n,WaitExten(5)
 same => n,Hangup()
exten => _[0-9*#],1,Stasis(numcfg-bench-hybrid,digit-ari,${{EXTEN}})
 same => n,Hangup()
exten => i,1,Hangup()
exten => t,1,Hangup()

; Employees of all variants: answer, talk 2 s, hang up first.
[numcfg-bench-employees]
exten => _[0-9].,1,Answer()
 same => n,Wait({EMPLOYEE_TALK_SECONDS})
 same => n,Hangup()

[numcfg-bench-trunk]
exten => _[+0-9].,1,Hangup()
"""
    return renamed + ours


def install_dialplan(root: Path, config_path: Path) -> None:
    env = {**os.environ, "NUMCFG_ARI_PASSWORD": ARI_PASSWORD, "NUMCFG_ARI_USER": ARI_USER}
    generated = subprocess.run(
        [str(BIN / "numcfg"), "dialplan", "-c", str(config_path)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    etc = root / "etc" / "asterisk"
    target = etc / BENCH_CONF
    tmp = target.with_suffix(".conf.new")
    tmp.write_text(bench_dialplan(generated))
    tmp.chmod(0o644)
    tmp.replace(target)
    extensions = etc / "extensions.conf"
    text = extensions.read_text()
    if INCLUDE_LINE not in text.splitlines():
        with extensions.open("a") as f:
            f.write(("" if text.endswith("\n") else "\n") + INCLUDE_LINE + "\n")
    rig("cli", "dialplan reload")
    for context in (*VARIANT_CONTEXTS.values(), "numcfg-bench-employees"):
        shown = rig("cli", f"dialplan show {context}")
        if f"'{context}'" not in shown:
            raise SystemExit(f"bench: context {context} not loaded after dialplan reload")


# -- numcfg process --------------------------------------------------------------------------
def spawn_numcfg(config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NUMCFG_ARI_PASSWORD": ARI_PASSWORD, "NUMCFG_ARI_USER": ARI_USER}
    command = [str(BIN / "numcfg"), "run", "-c", str(config_path)]
    if profile := os.environ.get("BENCH_CPROFILE"):
        # Call counts per function (what runs how often per call), written at its exit;
        # cProfile slows numcfg several-fold, so no CPU figure of such a run counts.
        command = [str(BIN / "python"), "-m", "cProfile", "-o", profile, *command]
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(config_path.parent),
        )


async def start_numcfg(config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    proc = spawn_numcfg(config_path, log_path)
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"bench: numcfg exited ({proc.returncode}); see {log_path}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"http://{API_LISTEN}/ready") as resp:
                    if resp.status == 200:
                        return proc
            await asyncio.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"bench: numcfg not ready within 30 s; see {log_path}")


def stop_numcfg(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def ari_requests(session: aiohttp.ClientSession) -> dict[str, float]:
    """numcfg's ARI REST requests so far, by HTTP method (from its /metrics)."""
    async with session.get(f"http://{API_LISTEN}/metrics") as resp:
        text = await resp.text()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r'numcfg_ari_request_seconds_count\{method="(\w+)"\} (\S+)', line)
        if match:
            counts[match.group(1)] = float(match.group(2))
    return counts


def numcfg_calls(config_path: Path) -> list[dict[str, Any]]:
    env = {**os.environ, "NUMCFG_ARI_PASSWORD": ARI_PASSWORD, "NUMCFG_ARI_USER": ARI_USER}
    out = subprocess.run(
        [str(BIN / "numcfg"), "calls", "-c", str(config_path), "--json", "--limit", "100000"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(out)
    return data if isinstance(data, list) else data.get("calls", [])


# -- the driver: callers ---------------------------------------------------------------------
@dataclass
class CallResult:
    ok: bool
    wall: float
    error: str = ""


@dataclass
class Driver:
    client: AriClient
    session: aiohttp.ClientSession
    started: dict[str, asyncio.Event] = field(default_factory=dict)
    ended: dict[str, asyncio.Event] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._ws = await self.session.ws_connect(
            f"ws://127.0.0.1:8088/ari/events?app={DRIVER_APP}",
            headers={"Authorization": self.client.auth_header},
            heartbeat=5,
        )
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._ws.close()

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            kind = event.get("type")
            channel = (event.get("channel") or {}).get("id", "")
            if kind == "StasisStart" and channel in self.started:
                self.started[channel].set()
            elif kind in ("ChannelDestroyed", "StasisEnd") and channel in self.ended:
                self.ended[channel].set()

    async def call(self, context: str, slot: int) -> CallResult:
        """One caller: dial, wait to be answered, press 1 during the IVR prompt, wait for
        the far end to hang up (the employee hangs up first in both variants)."""
        cid = f"bench-{uuid.uuid4().hex[:12]}"
        started, ended = asyncio.Event(), asyncio.Event()
        self.started[cid], self.ended[cid] = started, ended
        t0 = time.monotonic()
        try:
            await self.client.originate(
                endpoint=f"Local/{number(slot)}@{context}",
                channel_id=cid,
                other_channel_id=f"{cid}-far",
                app=DRIVER_APP,
                app_args="caller",
                caller_id=CALLER_ID,
                timeout=30,
                # A phone's G.711, as from a SIP trunk: without it a Local channel carries
                # signed linear at the highest rate and Asterisk spends the call resampling.
                formats="ulaw",
            )
            await asyncio.wait_for(started.wait(), 15)
            await asyncio.sleep(PRESS_AFTER_SECONDS)
            await self.client.send_dtmf(cid, "1")
            await asyncio.wait_for(ended.wait(), 30)
            return CallResult(ok=True, wall=time.monotonic() - t0)
        except (TimeoutError, AriError) as exc:
            with contextlib.suppress(AriError):
                await self.client.hangup(cid)
            return CallResult(ok=False, wall=time.monotonic() - t0, error=repr(exc))
        finally:
            self.started.pop(cid, None)
            self.ended.pop(cid, None)


OUR_CONTEXTS = re.compile(r"@numcfg-(bench-|(inbound|outbound|workday)-bench-)")


def ours(channel: dict[str, Any]) -> bool:
    """Channels of this benchmark: in our contexts, or our callers' ids."""
    return bool(OUR_CONTEXTS.search(channel.get("name", ""))) or channel.get("id", "").startswith(
        "bench-"
    )


@dataclass
class Watch:
    foreign: set[str] = field(default_factory=set)  # channels of other rig users: noise
    answered: set[str] = field(default_factory=set)  # employee legs seen Up


async def watch_channels(client: AriClient, watch: Watch, stop: asyncio.Event) -> None:
    """Poll the channel list (the same load in both variants): employees who answered
    (each is Up for 2 s, polled every 0.5 s) and other users' channels."""
    while not stop.is_set():
        with contextlib.suppress(AriError):
            for channel in await client.list_channels():
                name = channel.get("name", "")
                if not ours(channel):
                    watch.foreign.add(channel["id"])
                elif "@numcfg-bench-employees-" in name and channel.get("state") == "Up":
                    watch.answered.add(name.rsplit(";", 1)[0])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


# -- one run ---------------------------------------------------------------------------------
@dataclass
class RunResult:
    variant: str
    calls: int
    concurrency: int
    ok: int
    employee_answers: int
    elapsed_s: float
    asterisk_cpu_s: float
    numcfg_cpu_s: float
    # Of numcfg_cpu_s: its event loop's thread (the rest is worker threads).
    numcfg_loop_cpu_s: float
    driver_cpu_s: float
    numcfg_ari_requests_per_call: dict[str, float]
    wall_mean_s: float
    wall_p50_s: float
    wall_p95_s: float
    foreign_channels: int
    errors: list[str]
    round: int = 1

    @property
    def total_cpu_s(self) -> float:
        return self.asterisk_cpu_s + self.numcfg_cpu_s


async def run_variant(
    driver: Driver,
    client: AriClient,
    variant: str,
    *,
    calls: int,
    concurrency: int,
    warmup: int,
    ast_pid: int,
    numcfg_pid: int | None,
    metrics: bool = True,
) -> RunResult:
    context = VARIANT_CONTEXTS[variant]
    await asyncio.gather(*(driver.call(context, slot) for slot in range(1, warmup + 1)))
    await asyncio.sleep(1.0)

    watch = Watch()
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_channels(client, watch, stop))
    queue = list(range(calls))
    results: list[CallResult] = []

    async def worker(slot: int) -> None:
        while queue:
            queue.pop()
            results.append(await driver.call(context, slot))

    requests0 = await ari_requests(driver.session) if numcfg_pid and metrics else {}
    ast0 = cpu_seconds(ast_pid)
    num0 = cpu_seconds(numcfg_pid) if numcfg_pid else 0.0
    loop0 = loop_thread_cpu_seconds(numcfg_pid) if numcfg_pid else 0.0
    drv0 = time.process_time()
    t0 = time.monotonic()
    await asyncio.gather(*(worker(slot) for slot in range(1, concurrency + 1)))
    # numcfg writes the call record after the caller is gone; let both variants settle
    # for the same second before reading the counters.
    await asyncio.sleep(1.0)
    elapsed = time.monotonic() - t0
    drv1 = time.process_time()
    ast1 = cpu_seconds(ast_pid)
    num1 = cpu_seconds(numcfg_pid) if numcfg_pid else 0.0
    loop1 = loop_thread_cpu_seconds(numcfg_pid) if numcfg_pid else 0.0
    stop.set()
    await watcher
    requests1 = await ari_requests(driver.session) if numcfg_pid and metrics else {}
    ok = sum(r.ok for r in results)
    requests = {
        method: round((count - requests0.get(method, 0.0)) / max(1, ok), 2)
        for method, count in requests1.items()
    }

    walls = sorted(r.wall for r in results if r.ok)
    return RunResult(
        variant=variant,
        calls=calls,
        concurrency=concurrency,
        ok=ok,
        employee_answers=len(watch.answered),
        elapsed_s=elapsed,
        asterisk_cpu_s=ast1 - ast0,
        numcfg_cpu_s=num1 - num0,
        numcfg_loop_cpu_s=loop1 - loop0,
        driver_cpu_s=drv1 - drv0,
        numcfg_ari_requests_per_call=requests,
        wall_mean_s=statistics.fmean(walls) if walls else 0.0,
        wall_p50_s=walls[len(walls) // 2] if walls else 0.0,
        wall_p95_s=walls[min(len(walls) - 1, int(len(walls) * 0.95))] if walls else 0.0,
        foreign_channels=len(watch.foreign),
        errors=sorted({r.error for r in results if not r.ok})[:5],
    )


async def idle_rate(pid: int, seconds: float) -> float:
    """A process's CPU seconds per second with no call of ours running."""
    a0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - a0) / (time.monotonic() - t0)


async def cleanup(client: AriClient) -> None:
    """Hang up anything of ours that is still there (a failed call, an interrupted run)."""
    with contextlib.suppress(AriError):
        for channel in await client.list_channels():
            if ours(channel):
                with contextlib.suppress(AriError):
                    await client.hangup(channel["id"])
    with contextlib.suppress(AriError):
        info = await client.request("GET", f"/applications/{NUMCFG_APP}")
        for bridge_id in info.get("bridge_ids", []):
            with contextlib.suppress(AriError):
                await client.destroy_bridge(bridge_id)


# -- report ----------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s*(.+)", lscpu)
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    version = ""
    with contextlib.suppress(Exception):
        version = rig("cli", "core show version").strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": model.group(1).strip() if model else platform.processor(),
        "hypervisor": (re.search(r"Hypervisor vendor:\s*(.+)", lscpu) or [None, ""])[1],
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "asterisk": version,
    }


def summarize(runs: list[RunResult], target: float) -> dict[str, Any]:
    by = {v: [r for r in runs if r.variant == v] for v in VARIANT_CONTEXTS}

    def per_call(rs: list[RunResult], attr: str) -> float:
        return 1000 * sum(getattr(r, attr) for r in rs) / max(1, sum(r.ok for r in rs))

    dp = per_call(by["dialplan"], "asterisk_cpu_s")
    ast_n = per_call(by["numcfg"], "asterisk_cpu_s")
    num_n = per_call(by["numcfg"], "numcfg_cpu_s")
    ratio = (ast_n + num_n) / dp if dp else float("nan")
    # The figure: the median over rounds of each round's own ratio.
    rounds = sorted({r.round for r in runs})
    per_round = [
        (
            per_call([r for r in by["numcfg"] if r.round == n], "asterisk_cpu_s")
            + per_call([r for r in by["numcfg"] if r.round == n], "numcfg_cpu_s")
        )
        / per_call([r for r in by["dialplan"] if r.round == n], "asterisk_cpu_s")
        for n in rounds
        if any(r.round == n for r in by["dialplan"]) and any(r.round == n for r in by["numcfg"])
    ]
    hybrid: dict[str, Any] = {}
    if by["hybrid"]:
        ast_h = per_call(by["hybrid"], "asterisk_cpu_s")
        app_h = per_call(by["hybrid"], "numcfg_cpu_s")
        hybrid = {
            "hybrid_asterisk_ms_per_call": round(ast_h, 2),
            "hybrid_app_ms_per_call": round(app_h, 2),
            "hybrid_total_ms_per_call": round(ast_h + app_h, 2),
            "hybrid_ratio": round((ast_h + app_h) / dp, 3) if dp else float("nan"),
        }
    return {
        **hybrid,
        "dialplan_asterisk_ms_per_call": round(dp, 2),
        "numcfg_asterisk_ms_per_call": round(ast_n, 2),
        "numcfg_process_ms_per_call": round(num_n, 2),
        "numcfg_total_ms_per_call": round(ast_n + num_n, 2),
        "ratio": round(ratio, 3),
        "ratio_per_round": [round(x, 3) for x in per_round],
        "ratio_median_of_rounds": round(statistics.median(per_round), 3) if per_round else None,
        "target": target,
        "meets_target": (statistics.median(per_round) if per_round else ratio) <= target,
    }


def table(runs: list[RunResult], summary: dict[str, Any], hwm_kb: int, rss_kb: int) -> str:
    head = (
        "| run | variant | calls ok | employee answered | Asterisk CPU ms/call "
        "| numcfg CPU ms/call | total ms/call | driver ms/call | wall/call s (mean, p95) "
        "| foreign channels |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in runs:
        n = max(1, r.ok)
        rows.append(
            f"| {r.round} | {r.variant} | {r.ok}/{r.calls} | {r.employee_answers} "
            f"| {1000 * r.asterisk_cpu_s / n:.1f} | {1000 * r.numcfg_cpu_s / n:.1f} "
            f"| {1000 * r.total_cpu_s / n:.1f} | {1000 * r.driver_cpu_s / n:.1f} "
            f"| {r.wall_mean_s:.2f}, {r.wall_p95_s:.2f} | {r.foreign_channels} |"
        )
    s = summary
    verdict = "meets" if s["meets_target"] else "EXCEEDS"
    foot = (
        f"\n\n**Asterisk alone (dialplan): {s['dialplan_asterisk_ms_per_call']} ms/call; "
        f"Asterisk + numcfg: {s['numcfg_asterisk_ms_per_call']} + "
        f"{s['numcfg_process_ms_per_call']} = {s['numcfg_total_ms_per_call']} ms/call; "
        f"ratio {s['ratio']:.2f}x, median of the rounds' ratios "
        f"{s['ratio_median_of_rounds']}x ({verdict} the {s['target']}x target).** "
        f"numcfg peak RSS (VmHWM) {hwm_kb / 1024:.1f} MiB, RSS at end {rss_kb / 1024:.1f} MiB."
    )
    if "hybrid_ratio" in s:
        foot += (
            f" The ARI-for-decisions floor (--hybrid, bench/hybrid_app.py): Asterisk + app "
            f"{s['hybrid_asterisk_ms_per_call']} + {s['hybrid_app_ms_per_call']} = "
            f"{s['hybrid_total_ms_per_call']} ms/call, {s['hybrid_ratio']:.2f}x."
        )
    return head + "\n".join(rows) + foot


# -- main ------------------------------------------------------------------------------------
def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=env_int("BENCH_CALLS", 30))
    parser.add_argument("--concurrency", type=int, default=env_int("BENCH_CONCURRENCY", 5))
    parser.add_argument(
        "--rounds",
        type=int,
        default=env_int("BENCH_ROUNDS", 3),
        help="each round runs both variants (order alternates between rounds)",
    )
    parser.add_argument("--warmup", type=int, default=env_int("BENCH_WARMUP", 2))
    parser.add_argument(
        "--target",
        type=float,
        default=1.35,
        help="the ratio to meet (issue 15's for this round; the long-term aim is 1.18)",
    )
    parser.add_argument("--output", default=os.environ.get("BENCH_OUTPUT", "bench/results.json"))
    parser.add_argument(
        "--py-spy",
        default=os.environ.get("BENCH_PY_SPY"),
        metavar="FILE",
        help="profile numcfg with py-spy (on PATH or in .venv) during its runs, to FILE "
        "(speedscope if FILE ends in .json, collapsed stacks if .txt, else a flame graph SVG)",
    )
    parser.add_argument(
        "--perf-asterisk",
        default=os.environ.get("BENCH_PERF_ASTERISK"),
        metavar="DIR",
        help="record Asterisk with `perf record -g` during each variant of round 1, to "
        "DIR/<variant>.data (compare with `perf report -i ... --no-children --sort dso,sym`)",
    )
    parser.add_argument(
        "--hybrid",
        action="store_true",
        default=os.environ.get("BENCH_HYBRID") == "1",
        help="also run the 'ARI for decisions only' floor (bench/hybrid_app.py) each round",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--store-apart",
        action="store_true",
        default=os.environ.get("BENCH_STORE_APART") == "1",
        help="SQLite store in a sub-folder, not beside the config file (numcfg's default "
        "layout, whose writes wake the config-folder watcher)",
    )
    args = parser.parse_args()

    try:
        rig("status")
    except subprocess.CalledProcessError:
        print("bench: the rig is down; start it with `docker/rig up` (make rig)", file=sys.stderr)
        return 1
    root = Path(rig("root").strip())
    ast_pid = asterisk_pid(root)

    tmp = Path(tempfile.mkdtemp(prefix="numcfg-bench-"))
    config_path = tmp / "numcfg.yaml"
    if not 1 <= args.concurrency <= MAX_SLOTS or args.warmup > args.concurrency:
        parser.error(f"--concurrency must be 1..{MAX_SLOTS} and --warmup <= --concurrency")
    data = tmp / "data" if args.store_apart else tmp
    config_path.write_text(yaml.safe_dump(bench_config(args.concurrency, data), sort_keys=False))
    install_dialplan(root, config_path)

    client = AriClient(base_url=ARI_URL, username=ARI_USER, password=ARI_PASSWORD, app=DRIVER_APP)
    session = aiohttp.ClientSession()
    driver = Driver(client=client, session=session)
    proc = await start_numcfg(config_path, tmp / "numcfg.log")
    hybrid = start_hybrid(tmp / "hybrid.log") if args.hybrid else None
    spy: subprocess.Popen[bytes] | None = None
    runs: list[RunResult] = []
    try:
        await driver.start()
        idle = await idle_rate(ast_pid, 3.0)
        numcfg_idle = await idle_rate(proc.pid, 3.0)
        print(
            f"bench: Asterisk pid {ast_pid} (idle {1000 * idle:.1f} ms CPU/s), numcfg pid "
            f"{proc.pid} (idle {1000 * numcfg_idle:.1f} ms CPU/s); "
            f"{args.calls} calls x {args.concurrency} concurrent, "
            f"{args.rounds} round(s)",
            file=sys.stderr,
        )
        for round_no in range(args.rounds):
            order = ["dialplan", "numcfg"] if round_no % 2 == 0 else ["numcfg", "dialplan"]
            if hybrid is not None:
                order[1:1] = ["hybrid", "hybrid-ari"]
            for variant in order:
                if variant == "numcfg" and args.py_spy and spy is None:
                    spy = start_py_spy(proc.pid, args.py_spy)
                perf = (
                    start_perf(ast_pid, Path(args.perf_asterisk) / f"{variant}.data")
                    if args.perf_asterisk and round_no == 0
                    else None
                )
                result = await run_variant(
                    driver,
                    client,
                    variant,
                    calls=args.calls,
                    concurrency=args.concurrency,
                    warmup=args.warmup,
                    ast_pid=ast_pid,
                    numcfg_pid=decider_pid(variant, proc, hybrid),
                    metrics=variant == "numcfg",
                )
                result.round = round_no + 1
                if perf is not None:
                    perf.send_signal(signal.SIGINT)
                    perf.wait(timeout=60)
                runs.append(result)
                print(
                    f"bench: round {round_no + 1} {variant}: {result.ok}/{result.calls} ok, "
                    f"Asterisk {1000 * result.asterisk_cpu_s / max(1, result.ok):.1f} ms/call, "
                    f"numcfg {1000 * result.numcfg_cpu_s / max(1, result.ok):.1f} ms/call "
                    f"(event loop {1000 * result.numcfg_loop_cpu_s / max(1, result.ok):.1f})",
                    file=sys.stderr,
                )
        hwm_kb, rss_kb = status_kb(proc.pid, "VmHWM"), status_kb(proc.pid, "VmRSS")
        records = await asyncio.to_thread(numcfg_calls, config_path)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(timeout=60)
        await cleanup(client)
        stop_numcfg(proc)
        if hybrid is not None:
            stop_numcfg(hybrid)
        await driver.stop()
        await client.close()
        await session.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    summary = summarize(runs, args.target)
    answered = [r for r in records if r.get("disposition") == "answered"]
    routes = sorted({" > ".join(r.get("route") or []) for r in records})
    report = table(runs, summary, hwm_kb, rss_kb)
    print(report)
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "settings": {
            "calls": args.calls,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "press_after_s": PRESS_AFTER_SECONDS,
            "employee_talk_s": EMPLOYEE_TALK_SECONDS,
            "greeting": GREETING,
            "ivr_prompt": IVR_PROMPT,
            "profiled": bool(args.py_spy),
            "store_apart": args.store_apart,
        },
        "asterisk_idle_ms_per_s": round(1000 * idle, 2),
        "numcfg_idle_ms_per_s": round(1000 * numcfg_idle, 2),
        "summary": summary,
        "numcfg_vmhwm_kib": hwm_kb,
        "numcfg_vmrss_end_kib": rss_kb,
        "numcfg_call_records": {
            "total": len(records),
            "answered": len(answered),
            "routes": routes,
        },
        "runs": [asdict(r) for r in runs],
        "table_markdown": report,
    }
    out = REPO / args.output if not Path(args.output).is_absolute() else Path(args.output)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nbench: wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    bad = [r for r in runs if r.ok < r.calls or r.employee_answers < r.ok]
    if bad:
        print("bench: some calls failed; the figures are not comparable", file=sys.stderr)
        return 2
    return 0


def decider_pid(
    variant: str, numcfg: subprocess.Popen[bytes], hybrid: subprocess.Popen[bytes] | None
) -> int | None:
    """The process whose CPU counts beside Asterisk's in `variant`."""
    if variant == "numcfg":
        return numcfg.pid
    if variant.startswith("hybrid") and hybrid is not None:
        return hybrid.pid
    return None


def start_hybrid(log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NUMCFG_ARI_PASSWORD": ARI_PASSWORD, "NUMCFG_ARI_USER": ARI_USER}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "hybrid_app.py")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 15
    while "hybrid: ready" not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bench: the hybrid app did not start; see {log_path}")
        time.sleep(0.1)
    return proc


def start_perf(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """perf's samples of one process (all its threads) with call graphs, to `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        ["perf", "record", "-g", "-F", "2999", "-p", str(pid), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_py_spy(pid: int, out: str) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy") or str(BIN / "py-spy")
    fmt = {".json": "speedscope", ".txt": "raw"}.get(Path(out).suffix, "flamegraph")
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--rate",
            os.environ.get("BENCH_PY_SPY_RATE", "200"),
            # Pausing the process 500 times a second tripled its CPU per call.
            "--nonblocking",
            # Only the thread holding the GIL: where the Python CPU goes, whichever
            # thread (a thread waiting for the GIL or in a syscall is not sampled). It
            # over-weights a socket write that releases the GIL late (preemption counts):
            # BENCH_PY_SPY_GIL=0 samples every busy thread instead.
            *(["--gil"] if os.environ.get("BENCH_PY_SPY_GIL", "1") != "0" else []),
            "--threads",
            "--format",
            fmt,
            "-o",
            out,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
