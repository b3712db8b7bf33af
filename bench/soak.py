"""Soak: numcfg at a steady load for minutes, its resources sampled once a minute.

The load is the capacity run's flow (bench/load.py) at `--rate` calls per second, by
default half of numcfg's capacity in bench/capacity.json, on enough lines that a caller
never waits for one (twice the calls up at once). Each minute: numcfg's RSS (VmRSS),
open file descriptors (/proc/<pid>/fd, by kind), threads, and its asyncio task count
(the `numcfg_asyncio_tasks` gauge of its /metrics). The verdict (bench/stats.py):

* flat: the first `--warmup-minutes` (1) of load are the warm-up, and the sample at the
  end of the next minute is the baseline; the mean of the last two samples must be
  within 10 % of it (file descriptors and tasks: or within 2, threads within 1). The
  store's SQLite connections are counted apart: its pool opens them as calls first need
  them, so they must stay within the pool's bound (size + overflow), not flat;
* the load held: at most 1 % of the offered calls not placed or placed late by the
  driver (else the soak did not run at its rate);
* no call failed: every call placed went through, and numcfg kept its record.

Calls are counted in the minute they were offered in, so the rows add up to the total.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate R] [--lines N]

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
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from asterisk_bridge.store.engine import POOL_MAX_OVERFLOW, POOL_SIZE  # noqa: E402
from bench.capacity import TYPICAL_CALL_SECONDS  # noqa: E402
from bench.load import MAX_LINES, Bench, Call, bench, line_number  # noqa: E402
from bench.run import API_LISTEN, MAX_SLOTS, machine, numcfg_calls, status_kb  # noqa: E402
from bench.stats import (  # noqa: E402
    CallTally,
    flatness,
    load_held,
    percentile,
    slope,
    soak_verdict,
    tally,
)

METRICS = ("rss_kib", "open_fds_besides_store", "threads", "asyncio_tasks")
# Small counts: one socket or task more in flight at the sampling instant is no leak.
SLACK = {"open_fds_besides_store": 2.0, "threads": 1.0, "asyncio_tasks": 2.0}
# The store's SQLite connections (2 descriptors each, the database and its -wal) are
# opened by SQLAlchemy's pool as concurrent store calls first need them, up to its size
# plus overflow: a pool filling up is not a leak, one connection above its bound would be.
STORE_CONNECTIONS_BOUND = POOL_SIZE + POOL_MAX_OVERFLOW
STORE_FILE = "numcfg.sqlite3"  # bench/run.py's store, beside the config
TASKS_GAUGE = re.compile(r"^numcfg_asyncio_tasks(?:\{[^}]*\})? (\S+)$", re.MULTILINE)
# The driver may miss a few instants on a shared machine (another session's burst);
# more than this share of the offered calls not placed or late is not the rate offered.
LOAD_TOLERANCE = 0.01
# Lines per call up at once: a freed line waits behind as many others before it is used
# again, so numcfg has long finished with its employee.
LINES_PER_CALL_UP = 2
# numcfg writes a call's record after its caller is gone: wait this long before reading.
RECORD_SETTLE_SECONDS = 3.0
FAILED_KEPT = 10
ASTERISK_LOG_KEPT = 20


def fd_kinds(pid: int, store: Path) -> dict[str, int]:
    """numcfg's open descriptors by kind (socket, pipe, anon_inode, file, and the
    store's: `store` its database file, one per SQLite connection, `store_journal` its
    -wal and -shm): what a change in the count is made of."""
    kinds: Counter[str] = Counter()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target == str(store):
            kind = "store"
        elif target.startswith(f"{store}-"):
            kind = "store_journal"
        elif ":" in target and not target.startswith("/"):
            kind = target.split(":", 1)[0]
        else:
            kind = "file"
        kinds[kind] += 1
    return dict(sorted(kinds.items()))


async def asyncio_tasks(session: aiohttp.ClientSession) -> float | None:
    """numcfg's task gauge from /metrics, or None: a numcfg without it."""
    async with session.get(f"http://{API_LISTEN}/metrics") as resp:
        match = TASKS_GAUGE.search(await resp.text())
    return float(match.group(1)) if match else None


async def sample(b: Bench, minute: int) -> dict[str, Any]:
    pid = b.numcfg.pid
    kinds = fd_kinds(pid, b.tmp / STORE_FILE)
    return {
        "minute": minute,
        "at": round(time.time(), 3),
        "rss_kib": status_kb(pid, "VmRSS"),
        "open_fds": sum(kinds.values()),
        "open_fds_besides_store": sum(
            n for k, n in kinds.items() if k not in ("store", "store_journal")
        ),
        "store_connections": kinds.get("store", 0),
        "fd_kinds": kinds,
        "threads": status_kb(pid, "Threads"),
        "asyncio_tasks": await asyncio_tasks(b.driver.session),
    }


def tally_calls(calls: list[Call]) -> CallTally:
    return tally((c.placed, c.ok, c.late, c.error) for c in calls)


def minute_row(minute: int, calls: list[Call]) -> dict[str, Any]:
    t = tally_calls(calls)
    media = [c.first_media_ms for c in calls if c.ok and c.first_media_ms is not None]
    return {"minute": minute, **asdict(t), "first_media_p99_ms": percentile(media, 99)}


def records_check(calls: list[Call], records: list[dict[str, Any]]) -> dict[str, int]:
    """numcfg's side of the calls, line by line (a record's callee is the number
    dialled): a placed call without a record, or a call the driver saw go through whose
    record does not say answered by the line's employee, is numcfg's failure."""
    placed: Counter[str] = Counter()
    through: Counter[str] = Counter()
    for c in calls:
        if c.placed:
            placed[line_number(c.slot)] += 1
            through[line_number(c.slot)] += c.ok
    kept: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    for r in records:
        callee = r.get("callee") or ""
        kept[callee] += 1
        route = r.get("route") or []
        if r.get("disposition") == "answered" and route and route[-1].startswith("employee:"):
            answered[callee] += 1
    return {
        "records": len(records),
        "missing": sum(max(0, n - kept[k]) for k, n in placed.items()),
        "through_but_not_answered": sum(max(0, n - answered[k]) for k, n in through.items()),
        "extra": sum(max(0, n - placed[k]) for k, n in kept.items()),
    }


def asterisk_log_since(root: Path, offset: int) -> list[str]:
    """Asterisk's warnings and errors (its messages.log) written since byte `offset`,
    the same line repeated once with its count: a stall of Asterisk shows there (a
    playback failed, a websocket it could not write to, an app not active)."""
    path = root / "var" / "log" / "asterisk" / "messages.log"
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    kept: Counter[str] = Counter()
    first: dict[str, str] = {}
    for line in text.splitlines():
        if "WARNING[" not in line and "ERROR[" not in line and "ari_websockets" not in line:
            continue
        # "[Dec  1 20:39:17] WARNING[16063][C-0000039e] res_stasis_playback.c: bench-..-far:
        # Playback failed for tone:ring": the same message without time, thread and channel.
        key = re.sub(r"^\[[^]]*\] (\w+)\[\d+\](\[[^]]*\])?", r"\1", line)
        key = re.sub(r"bench-[0-9a-f]+(-far)?|127\.0\.0\.1:\d+", "*", key)
        kept[key] += 1
        first.setdefault(key, line)
    return [f"{n} x {first[k]}" for k, n in kept.most_common(ASTERISK_LOG_KEPT)]


def log_size(root: Path) -> int:
    path = root / "var" / "log" / "asterisk" / "messages.log"
    return path.stat().st_size if path.exists() else 0


def numcfg_log_problems(path: Path) -> list[str]:
    """numcfg's own WARNING and ERROR lines, counted by message (call ids blanked)."""
    kept: Counter[str] = Counter()
    first: dict[str, str] = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) < 4 or parts[2] not in ("WARNING", "ERROR"):
            continue
        key = re.sub(r"[0-9a-f]{32}|[0-9a-f]{12}|br-[0-9a-f-]+", "*", parts[3])
        kept[key] += 1
        first.setdefault(key, line)
    return [f"{n} x {first[k]}" for k, n in kept.most_common(ASTERISK_LOG_KEPT)]


def default_rate(path: Path) -> float:
    try:
        cap = json.loads(path.read_text())["summary"]["numcfg"]["capacity_calls_per_s"]
    except (OSError, KeyError, ValueError) as exc:
        raise SystemExit(f"soak: no capacity in {path} ({exc}); give --rate") from None
    if not cap:
        raise SystemExit(f"soak: numcfg's capacity in {path} is 0; give --rate")
    return cap / 2


def lines_for(rate: float) -> int:
    """Lines for `rate`: LINES_PER_CALL_UP per call up at once, at least run.py's 99."""
    return max(MAX_SLOTS, math.ceil(LINES_PER_CALL_UP * rate * TYPICAL_CALL_SECONDS))


def table(
    samples: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    verdicts: list[Any],
    rate: float,
    baseline_minute: int,
) -> str:
    head = (
        "| minute | RSS MiB | open fds (store connections) | threads | asyncio tasks "
        "| calls offered | ok | failed | not placed | late | first media p99 ms |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    by_minute = {r["minute"]: r for r in rows}
    lines = []
    for s in samples:
        r = by_minute.get(s["minute"])
        calls = (
            f"{r['offered']} | {r['ok']} | {r['failed'] + r['failed_late']} "
            f"| {r['not_placed']} | {r['late']} | {r['first_media_p99_ms']}"
            if r
            else "- | - | - | - | - | -"
        )
        mark = " (baseline)" if s["minute"] == baseline_minute else ""
        lines.append(
            f"| {s['minute']}{mark} | {s['rss_kib'] / 1024:.1f} | {s['open_fds']} "
            f"({s['store_connections']}) "
            f"| {s['threads']} "
            f"| {'-' if s['asyncio_tasks'] is None else int(s['asyncio_tasks'])} | {calls} |"
        )
    parts = []
    for v in verdicts:
        if v.baseline != v.baseline:  # nan: not measured
            parts.append(f"{v.metric}: not measured")
        else:
            parts.append(
                f"{v.metric} {v.baseline:g} -> {v.last:g} ({100 * v.change:+.1f} %) "
                f"{'flat' if v.flat else 'NOT flat'}"
            )
    return (
        head
        + "\n".join(lines)
        + f"\n\n**Soak at {rate:g} calls/s, baseline minute {baseline_minute}: "
        + "; ".join(parts)
        + ".**"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=int(os.environ.get("SOAK_MINUTES", 10)))
    parser.add_argument("--rate", type=float, default=None, help="calls/s (default: capacity/2)")
    parser.add_argument(
        "--lines", type=int, default=None, help="numbers/employees (default: 2 per call up)"
    )
    parser.add_argument(
        "--warmup-minutes",
        type=int,
        default=1,
        help="first minutes of load left out of the verdict (default 1)",
    )
    parser.add_argument("--capacity", default=str(REPO / "bench" / "capacity.json"))
    parser.add_argument("--sample-seconds", type=float, default=60.0)
    parser.add_argument("--output", default=os.environ.get("SOAK_OUTPUT", "bench/soak.json"))
    args = parser.parse_args()
    if args.minutes < 1 or args.warmup_minutes < 0:
        parser.error("--minutes must be at least 1, --warmup-minutes at least 0")
    rate = args.rate or default_rate(Path(args.capacity))
    lines = args.lines or lines_for(rate)
    if lines > MAX_LINES:
        parser.error(f"{rate:g} calls/s needs {lines} lines, more than the {MAX_LINES} there are")
    # Samples 0 (before any call) .. warm-up are left out; the next one is the baseline,
    # and the last two must not be it: at least warm-up + 3 minutes to judge.
    baseline_minute = args.warmup_minutes + 1
    judged = args.minutes >= baseline_minute + 2

    samples: list[dict[str, Any]] = []
    offered: list[list[asyncio.Task[Call]]] = []
    started = time.monotonic()
    async with bench(slots=lines) as b:
        print(
            f"soak: numcfg pid {b.numcfg.pid}, {rate:g} calls/s on {lines} lines for "
            f"{args.minutes} min (warm-up {args.warmup_minutes} min)",
            file=sys.stderr,
        )
        log_offset = log_size(b.root)
        samples.append(await sample(b, 0))
        for minute in range(1, args.minutes + 1):
            offered.append(await b.driver.offer("numcfg", rate, args.sample_seconds))
            samples.append(await sample(b, minute))
            # The minute before's calls have ended by now (a call lasts ~5 s).
            if minute > 1:
                done = [t.result() for t in offered[-2] if t.done()]
                t = tally_calls(done)
                calls_info = (
                    f"minute {minute - 1}: {t.ok}/{t.offered} ok, {t.failed} failed, "
                    f"{t.not_placed} not placed, {t.late} late {t.reasons or ''}"
                )
            else:
                calls_info = ""
            print(f"soak: {samples[-1]} {calls_info}", file=sys.stderr, flush=True)
        per_minute = [await asyncio.gather(*tasks) for tasks in offered]
        await asyncio.sleep(RECORD_SETTLE_SECONDS)
        records = await asyncio.to_thread(numcfg_calls, b.tmp / "numcfg.yaml")
        asterisk_log = asterisk_log_since(b.root, log_offset)
        numcfg_log = numcfg_log_problems(b.tmp / "numcfg.log")
    every = [c for calls in per_minute for c in calls]
    rows = [minute_row(m, calls) for m, calls in enumerate(per_minute, start=1)]
    total = tally_calls(every)
    numcfg_side = records_check(every, records)
    records_missing = numcfg_side["missing"] + numcfg_side["through_but_not_answered"]

    have = [m for m in METRICS if all(s[m] is not None for s in samples)]
    if judged:
        verdicts = flatness(
            samples, metrics=list(METRICS), warmup=baseline_minute, last=2, slack=SLACK
        )
        flat = all(v.flat for v in verdicts if v.metric in have) and len(have) == len(METRICS)
    else:
        verdicts, flat = [], False
    # After the baseline: growth per minute, which 10 % over 10 minutes can hide.
    growth = {
        m: slope([(s["minute"], float(s[m])) for s in samples[baseline_minute:]]) for m in have
    }
    store_peak = max(s["store_connections"] for s in samples)
    why = soak_verdict(
        total,
        flat=flat,
        records_missing=records_missing,
        load_tolerance=LOAD_TOLERANCE,
        store_connections=store_peak,
        store_bound=STORE_CONNECTIONS_BOUND,
    )
    if not judged:
        why[why.index("not flat")] = (
            f"too short to judge flatness (needs {baseline_minute + 2} minutes)"
        )
    report = (
        table(samples, rows, verdicts, rate, baseline_minute)
        + " Growth from the baseline: "
        + ", ".join(f"{m} {v:+.1f}/min" for m, v in growth.items() if v is not None)
        + f". Store connections at most {store_peak} (its pool's bound "
        f"{STORE_CONNECTIONS_BOUND}). {total.offered} calls offered, {total.placed} placed, "
        f"{total.ok} ok, "
        f"{total.failed} failed ({total.failed_late} more with the driver late), "
        f"{total.not_placed} not placed, {total.late} late; numcfg records "
        f"{numcfg_side['records']} ({records_missing} missing or not answered). "
        + (f"**Not passed: {'; '.join(why)}.**" if why else "**Passed.**")
    )
    print(report)
    for title, lines_ in (("Asterisk", asterisk_log), ("numcfg", numcfg_log)):
        if lines_:
            print(f"soak: {title}'s warnings and errors:", *lines_, sep="\n  ", file=sys.stderr)
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "settings": {
            "rate": rate,
            "minutes": args.minutes,
            "lines": lines,
            "warmup_minutes": args.warmup_minutes,
            "baseline_minute": baseline_minute,
            "sample_seconds": args.sample_seconds,
            "load_tolerance": LOAD_TOLERANCE,
            "elapsed_s": round(time.monotonic() - started, 1),
        },
        "samples": samples,
        "minutes": rows,
        "verdicts": [
            {
                k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(x).items()
            }
            for x in verdicts
        ],
        "flat": flat,
        "load_held": load_held(total, LOAD_TOLERANCE),
        "store_connections": {"peak": store_peak, "bound": STORE_CONNECTIONS_BOUND},
        "growth_per_minute": growth,
        "missing": [m for m in METRICS if m not in have],
        "calls": asdict(total),
        "numcfg_records": numcfg_side,
        "passed": not why,
        "why_not": why,
        # What the observer saw of the first failed calls: the place to start looking.
        "failed_calls": [asdict(c) for c in every if not c.ok][:FAILED_KEPT],
        "asterisk_log": asterisk_log,
        "numcfg_log": numcfg_log,
        "table_markdown": report,
    }
    out = Path(args.output) if Path(args.output).is_absolute() else REPO / args.output
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nsoak: wrote {out}; {'passed' if not why else '; '.join(why)}", file=sys.stderr)
    return 0 if not why else 2


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
