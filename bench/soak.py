"""Soak: numcfg at a steady load for minutes, its resources sampled once a minute.

The load is the capacity run's flow (bench/load.py) at `--rate` calls per second, by
default half of numcfg's capacity in bench/capacity.json. Each minute: numcfg's RSS
(VmRSS), open file descriptors (/proc/<pid>/fd), threads, and its asyncio task count if
its /metrics has a `numcfg_asyncio_tasks` gauge. The verdict (bench/stats.py flatness):
after one minute of warm-up, the mean of the last two samples within 10 % of the first
sample after the warm-up (file descriptors and tasks: or within 2).

    .venv/bin/python bench/soak.py [--minutes 10] [--rate R]

writes bench/soak.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.load import Bench, Call, bench  # noqa: E402
from bench.run import API_LISTEN, machine, status_kb  # noqa: E402
from bench.stats import flatness, percentile, slope  # noqa: E402

METRICS = ("rss_kib", "open_fds", "threads", "asyncio_tasks")
# Small counts: one socket or task more in flight at the sampling instant is no leak.
SLACK = {"open_fds": 2.0, "threads": 1.0, "asyncio_tasks": 2.0}
TASKS_GAUGE = re.compile(r"^numcfg_asyncio_tasks(?:\{[^}]*\})? (\S+)$", re.MULTILINE)


async def asyncio_tasks(session: aiohttp.ClientSession) -> float | None:
    """numcfg's task gauge from /metrics, or None: numcfg has none yet."""
    async with session.get(f"http://{API_LISTEN}/metrics") as resp:
        match = TASKS_GAUGE.search(await resp.text())
    return float(match.group(1)) if match else None


async def sample(b: Bench, minute: int, calls: list[Call]) -> dict[str, Any]:
    pid = b.numcfg.pid
    ok = [c for c in calls if c.ok]
    media = [c.first_media_ms for c in ok if c.first_media_ms is not None]
    return {
        "minute": minute,
        "rss_kib": status_kb(pid, "VmRSS"),
        "open_fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": status_kb(pid, "Threads"),
        "asyncio_tasks": await asyncio_tasks(b.driver.session),
        "calls": len(calls),
        "failed": len(calls) - len(ok),
        "first_media_p99_ms": percentile(media, 99),
    }


def default_rate(path: Path) -> float:
    try:
        cap = json.loads(path.read_text())["summary"]["numcfg"]["capacity_calls_per_s"]
    except (OSError, KeyError, ValueError) as exc:
        raise SystemExit(f"soak: no capacity in {path} ({exc}); give --rate") from None
    if not cap:
        raise SystemExit(f"soak: numcfg's capacity in {path} is 0; give --rate")
    return cap / 2


def table(samples: list[dict[str, Any]], verdicts: list[Any], rate: float) -> str:
    head = (
        "| minute | RSS MiB | open fds | threads | asyncio tasks | calls that minute "
        "| failed | first media p99 ms |\n|---|---|---|---|---|---|---|---|\n"
    )
    rows = [
        f"| {s['minute']} | {s['rss_kib'] / 1024:.1f} | {s['open_fds']} | {s['threads']} "
        f"| {'-' if s['asyncio_tasks'] is None else int(s['asyncio_tasks'])} | {s['calls']} "
        f"| {s['failed']} | {s['first_media_p99_ms']} |"
        for s in samples
    ]
    parts = []
    for v in verdicts:
        if v.baseline != v.baseline:  # nan: not measured
            parts.append(f"{v.metric}: not measured")
        else:
            parts.append(
                f"{v.metric} {v.baseline:g} -> {v.last:g} ({100 * v.change:+.1f} %) "
                f"{'flat' if v.flat else 'NOT flat'}"
            )
    return head + "\n".join(rows) + f"\n\n**Soak at {rate:g} calls/s: " + "; ".join(parts) + ".**"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=int(os.environ.get("SOAK_MINUTES", 10)))
    parser.add_argument("--rate", type=float, default=None, help="calls/s (default: capacity/2)")
    parser.add_argument("--capacity", default=str(REPO / "bench" / "capacity.json"))
    parser.add_argument("--sample-seconds", type=float, default=60.0)
    parser.add_argument("--output", default=os.environ.get("SOAK_OUTPUT", "bench/soak.json"))
    args = parser.parse_args()
    if args.minutes < 3:
        parser.error("--minutes must be at least 3 (a warm-up minute and two to compare)")
    rate = args.rate or default_rate(Path(args.capacity))

    samples: list[dict[str, Any]] = []
    tasks: list[asyncio.Task[Call]] = []
    async with bench() as b:
        print(
            f"soak: numcfg pid {b.numcfg.pid}, {rate:g} calls/s for {args.minutes} min",
            file=sys.stderr,
        )
        samples.append(await sample(b, 0, []))
        last = time.time()
        for minute in range(1, args.minutes + 1):
            tasks += await b.driver.offer("numcfg", rate, args.sample_seconds)
            now = time.time()
            # The minute's figures are the calls that ended in it; the load goes on.
            ended = [
                c
                for c in (t.result() for t in tasks if t.done())
                if c.ended is not None and last < c.ended <= now
            ]
            samples.append(await sample(b, minute, ended))
            last = now
            print(f"soak: {samples[-1]}", file=sys.stderr, flush=True)
        every = await asyncio.gather(*tasks)
    have = [m for m in METRICS if all(s[m] is not None for s in samples)]
    verdicts = flatness(samples, metrics=list(METRICS), warmup=1, last=2, slack=SLACK)
    flat = all(v.flat for v in verdicts if v.metric in have)
    # After the warm-up minute: growth per minute, which 10 % over 10 minutes can hide.
    per_minute = {m: slope([(s["minute"], float(s[m])) for s in samples[1:]]) for m in have}
    failed = sum(not c.ok for c in every)
    report = table(samples, verdicts, rate) + (
        " Growth after the warm-up: "
        + ", ".join(f"{m} {v:+.1f}/min" for m, v in per_minute.items() if v is not None)
        + f". {len(every)} calls, {failed} failed."
    )
    print(report)
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "settings": {"rate": rate, "minutes": args.minutes, "sample_seconds": args.sample_seconds},
        "samples": samples,
        "verdicts": [
            {
                k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(x).items()
            }
            for x in verdicts
        ],
        "flat": flat,
        "growth_per_minute": per_minute,
        "missing": [m for m in METRICS if m not in have],
        "calls": len(every),
        "failed": failed,
        "table_markdown": report,
    }
    out = Path(args.output) if Path(args.output).is_absolute() else REPO / args.output
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(
        f"\nsoak: wrote {out}; {'flat' if flat else 'NOT flat'}, {failed} failed", file=sys.stderr
    )
    return 0 if flat and not failed else 2


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
