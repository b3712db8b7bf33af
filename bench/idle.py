"""numcfg's CPU with no call up, and which of its threads spend it (issue 15).

Starts `numcfg run` with the benchmark's config (bench/run.py: app `numcfg-bench`, SQLite
store beside the config) on the running rig, lets it settle, then measures its CPU over
windows of a few lengths, several times each (the machine is shared: repeat and compare
medians). Per thread: CPU and voluntary context switches (each one a wake-up) from
/proc/<pid>/task/*, named by py-spy when it is on PATH or in .venv (else by `comm`).

    .venv/bin/python bench/idle.py [--windows 3x5,30x3] [--settle 5] [--py-spy FILE]

`--py-spy FILE` records the whole measurement with `py-spy record --nonblocking` at
250 Hz, on-CPU samples only (collapsed stacks if FILE ends in .txt, speedscope if .json,
else an SVG flame graph). Window figures are from schedstat (nanoseconds), the per-thread
table gives both schedstat and the 10 ms ticks of /proc/<pid>/stat that bench/run.py
reads. Prints a Markdown table; nothing on the rig is changed (no dialplan is installed:
no call is made).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.run import BIN, CLK_TCK, bench_config, rig, start_numcfg, stop_numcfg  # noqa: E402


@dataclass
class ThreadSample:
    comm: str
    cpu_s: float  # utime+stime (clock ticks: 10 ms steps)
    run_ns: int  # time on a CPU (schedstat: nanoseconds)
    wakeups: int  # voluntary context switches


def run_seconds(pid: int) -> float:
    """The process's time on a CPU, all threads, from schedstat: nanoseconds, where
    /proc/<pid>/stat counts 10 ms ticks (a 3 s window of an idle process reads 0, 3.3 or
    6.7 ms/s there)."""
    return sum(t.run_ns for t in threads(pid).values()) / 1e9


def threads(pid: int) -> dict[int, ThreadSample]:
    """Every thread's utime+stime and voluntary context switches, by thread id."""
    out: dict[int, ThreadSample] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            status = (task / "status").read_text()
            schedstat = (task / "schedstat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        match = re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.MULTILINE)
        out[int(task.name)] = ThreadSample(
            comm=comm,
            cpu_s=(int(fields[11]) + int(fields[12])) / CLK_TCK,
            run_ns=int(schedstat.split()[0]),
            wakeups=int(match.group(1)) if match else 0,
        )
    return out


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(BIN / "py-spy")
    return found if Path(found).exists() else None


def thread_names(pid: int) -> dict[int, str]:
    """Python's names of the threads (py-spy dump), by OS thread id."""
    exe = py_spy()
    if exe is None:
        return {}
    try:
        dump = subprocess.run(
            [exe, "dump", "--pid", str(pid), "--nonblocking", "--json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return {}
    names: dict[int, str] = {}
    for thread in json.loads(dump):
        if thread.get("os_thread_id") is None:
            continue
        frames = thread.get("frames") or []
        top = next((f["name"] for f in frames if "threading.py" not in f["filename"]), "")
        names[int(thread["os_thread_id"])] = f"{thread.get('thread_name') or '?'} [{top}]"
    return names


def parse_windows(text: str) -> list[float]:
    """ "3x5,30x3" -> five 3 s windows then three 30 s ones."""
    windows: list[float] = []
    for part in text.split(","):
        seconds, _, times = part.partition("x")
        windows += [float(seconds)] * int(times or 1)
    return windows


async def measure(pid: int, windows: list[float]) -> dict[float, list[float]]:
    rates: dict[float, list[float]] = {}
    for seconds in windows:
        a0, t0 = run_seconds(pid), time.monotonic()
        await asyncio.sleep(seconds)
        rate = (run_seconds(pid) - a0) / (time.monotonic() - t0)
        rates.setdefault(seconds, []).append(1000 * rate)
        print(f"idle: {seconds:g} s window: {1000 * rate:.2f} ms CPU/s", file=sys.stderr)
    return rates


def report(
    rates: dict[float, list[float]],
    before: dict[int, ThreadSample],
    after: dict[int, ThreadSample],
    elapsed: float,
    names: dict[int, str],
) -> str:
    lines = ["| window | runs | ms CPU/s each | median |", "|---|---|---|---|"]
    for seconds, values in rates.items():
        each = ", ".join(f"{v:.2f}" for v in values)
        median = statistics.median(values)
        lines.append(f"| {seconds:g} s | {len(values)} | {each} | {median:.2f} |")
    lines += [
        "",
        f"Per thread over the whole {elapsed:.0f} s:",
        "",
        "| tid | thread | ms CPU/s (schedstat) | ms CPU/s (stat ticks) | wake-ups/s |",
        "|---|---|---|---|---|",
    ]
    rows = []
    for tid, end in after.items():
        start = before.get(tid, ThreadSample(end.comm, 0.0, 0, 0))
        run = (end.run_ns - start.run_ns) / 1e6 / elapsed
        cpu = 1000 * (end.cpu_s - start.cpu_s) / elapsed
        wakeups = (end.wakeups - start.wakeups) / elapsed
        rows.append((run, cpu, wakeups, tid, names.get(tid, end.comm)))
    for run, cpu, wakeups, tid, name in sorted(rows, reverse=True):
        lines.append(f"| {tid} | {name} | {run:.3f} | {cpu:.2f} | {wakeups:.2f} |")
    total = sum(r[0] for r in rows)
    lines.append(f"| | all threads | {total:.3f} | {sum(r[1] for r in rows):.2f} | |")
    return "\n".join(lines)


def start_py_spy(exe: str, pid: int, out: str) -> subprocess.Popen[bytes]:
    fmt = {".json": "speedscope", ".txt": "raw"}.get(Path(out).suffix, "flamegraph")
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            # An idle numcfg is on a CPU 0.3 % of the time: 250 samples a second give a
            # few hundred on-CPU samples in a couple of minutes. Only on-CPU samples are
            # kept (no --idle): the stacks are where the CPU goes.
            "--rate",
            "250",
            # Never pauses the process (a paused process would wake more).
            "--nonblocking",
            "--threads",
            "--format",
            fmt,
            "-o",
            out,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", default="3x5,30x3", help="SECONDSxTIMES,... (3x5,30x3)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--py-spy", metavar="FILE", help="record py-spy (--idle) to FILE")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    try:
        rig("status")
    except subprocess.CalledProcessError:
        print("idle: the rig is down; start it with `docker/rig up`", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="numcfg-idle-"))
    config_path = tmp / "numcfg.yaml"
    config_path.write_text(yaml.safe_dump(bench_config(5, tmp), sort_keys=False))
    proc = await start_numcfg(config_path, tmp / "numcfg.log")
    spy: subprocess.Popen[bytes] | None = None
    try:
        await asyncio.sleep(args.settle)
        names = thread_names(proc.pid)
        if args.py_spy:
            exe = py_spy()
            if exe is None:
                parser.error("--py-spy: no py-spy on PATH or in .venv")
            spy = start_py_spy(exe, proc.pid, args.py_spy)
        before, t0 = threads(proc.pid), time.monotonic()
        rates = await measure(proc.pid, parse_windows(args.windows))
        after, elapsed = threads(proc.pid), time.monotonic() - t0
    finally:
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its file
            spy.wait(timeout=60)
        stop_numcfg(proc)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"numcfg pid {proc.pid}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}")
    print(report(rates, before, after, elapsed, names))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
