"""Capacity: offered load rising step by step, numcfg and the dialplan variant on the
same rig in the same run, until calls fail or callers wait.

Each step offers `rate` calls per second for `--step-seconds` (each call lasts ~5.2 s,
so about rate x 5 calls are up at once); the load rises without draining between steps.
A variant stops at its first step that fails (see bench/stats.py's step_verdict); its
capacity is the highest rate that passed below it. Per step: CPU per call of Asterisk
and of numcfg, the driver's CPU, the machine's busy share, and the p50/p99 of

* time to first media: numcfg: Stasis() entered -> PlaybackStarted of the greeting;
  dialplan: the call enters its context -> Playback() entered;
* digit to ringing: the "1" received -> Asterisk calls the employee's phone,

all from Asterisk's own event timestamps. Results: a Markdown table on stdout and
bench/capacity.json; bench/plot.py draws them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.load import FLOORS, Bench, Call, Driver, bench  # noqa: E402
from bench.run import cpu_seconds, machine  # noqa: E402
from bench.stats import call_equivalents, capacity, percentile, step_verdict  # noqa: E402

DEFAULT_RATES = "1,2,4,6,8,10,12,16,20,25,30,40,50,60"
# Enough lines for the highest rate (60/s x 5.2 s = 312 calls up) with room to spare,
# so a line is reused only long after its last call.
DEFAULT_LINES = 399
# A step makes callers wait when a latency's p99 rises this far above the same
# variant's p50 at the lowest step: a caller notices a quarter of a second of silence.
DEFAULT_WAIT_MS = 250.0
# The figure: p99 time to first media at 50 concurrent calls (rate 10 x 5 s).
REFERENCE_CONCURRENCY = 50
# A call's length on the rig (greeting, prompt to the "1", 2.5 s with the employee), for
# a step with no call through to compare with.
TYPICAL_CALL_SECONDS = 5.2
WARMUP_CALLS = 2


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, already counted in user
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


@dataclass
class Snapshot:
    at: float
    asterisk: float
    numcfg: float
    driver: float
    busy: float
    total: float

    @classmethod
    def take(cls, b: Bench, variant: str) -> Snapshot:
        busy, total = machine_busy_seconds()
        return cls(
            time.time(),
            cpu_seconds(b.ast_pid),
            cpu_seconds(b.decider_pid(variant)),
            time.process_time(),
            busy,
            total,
        )


@dataclass
class StepResult:
    variant: str
    rate: float
    seconds: float
    calls: int
    ok: int
    failed: int
    late: int
    concurrency_max: int
    concurrency_mean: float
    first_media_p50_ms: float | None
    first_media_p99_ms: float | None
    digit_to_ring_p50_ms: float | None
    digit_to_ring_p99_ms: float | None
    asterisk_ms_per_call: float
    numcfg_ms_per_call: float
    driver_ms_per_call: float
    machine_busy_pct: float
    passed: bool
    reason: str
    errors: list[str]
    failed_calls: list[dict[str, Any]]


def concurrency(calls: list[Call], lo: float, hi: float) -> tuple[int, float]:
    """Peak and time-averaged number of calls up in [lo, hi]."""
    spans = [(c.scheduled, c.ended) for c in calls if c.ended is not None]
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    up = peak = 0
    for t, delta in points:
        up += delta
        if lo <= t <= hi:
            peak = max(peak, up)
    mean = sum(max(0.0, min(e, hi) - max(s, lo)) for s, e in spans) / max(1e-9, hi - lo)
    return peak, mean


def summarize_step(
    *,
    variant: str,
    rate: float,
    calls: list[Call],
    everything: list[Call],
    before: Snapshot,
    after: Snapshot,
    idle: dict[str, float],
    baseline: dict[str, float | None],
    wait_ms: float,
) -> StepResult:
    ok = [c for c in calls if c.ok]
    media = [c.first_media_ms for c in ok if c.first_media_ms is not None]
    ring = [c.ring_ms for c in ok if c.ring_ms is not None]
    window = after.at - before.at
    durations = [c.ended - c.scheduled for c in everything if c.ok and c.ended]
    mean_duration = statistics.fmean(durations) if durations else TYPICAL_CALL_SECONDS
    spans = [(c.scheduled, c.ended) for c in everything if c.ended is not None]
    n = max(1e-9, call_equivalents(spans, before.at, after.at, mean_duration))

    def per_call(used: float, idle_rate: float) -> float:
        # The process's idle rate (measured before the run) is not the calls' doing.
        return 1000 * max(0.0, used - idle_rate * window) / n

    p99 = {"first_media": percentile(media, 99), "digit_to_ring": percentile(ring, 99)}
    # A call never placed (no free line, originate refused) is the driver's or
    # Asterisk's: counted as waiting, not as failed.
    late = sum(c.late or not c.placed for c in calls)
    failed = sum(not c.ok and c.placed for c in calls)
    verdict = step_verdict(
        calls=len(calls),
        failed=failed,
        late=late,
        p99_ms=p99,
        baseline_ms=baseline,
        wait_ms=wait_ms,
    )
    peak, mean = concurrency(everything, before.at, after.at)
    return StepResult(
        variant=variant,
        rate=rate,
        seconds=round(window, 2),
        calls=len(calls),
        ok=len(ok),
        failed=failed,
        late=late,
        concurrency_max=peak,
        concurrency_mean=round(mean, 1),
        first_media_p50_ms=percentile(media, 50),
        first_media_p99_ms=p99["first_media"],
        digit_to_ring_p50_ms=percentile(ring, 50),
        digit_to_ring_p99_ms=p99["digit_to_ring"],
        asterisk_ms_per_call=round(per_call(after.asterisk - before.asterisk, idle["asterisk"]), 2),
        # For a floor, its app's CPU (numcfg idles meanwhile).
        numcfg_ms_per_call=round(
            per_call(after.numcfg - before.numcfg, idle.get(variant, idle["numcfg"])), 2
        ),
        driver_ms_per_call=round(per_call(after.driver - before.driver, 0.0), 2),
        machine_busy_pct=round(
            100 * (after.busy - before.busy) / max(1e-9, after.total - before.total), 1
        ),
        passed=verdict.ok,
        reason=verdict.reason,
        errors=sorted({c.error for c in calls if c.error})[:5],
        # What the observer saw of the first few failed calls: the place to start looking.
        failed_calls=[asdict(c) for c in calls if not c.ok][:5],
    )


async def idle_rates(b: Bench, seconds: float) -> dict[str, float]:
    """CPU seconds per second with no call: Asterisk's, numcfg's and, with --hybrid, the
    floors' app's (under each floor's name)."""
    pids = {"asterisk": b.ast_pid, "numcfg": b.numcfg.pid}
    if b.hybrid is not None:
        pids.update((floor, b.hybrid.pid) for floor in FLOORS)
    before, t0 = {k: cpu_seconds(pid) for k, pid in pids.items()}, time.monotonic()
    await asyncio.sleep(seconds)
    dt = time.monotonic() - t0
    return {k: (cpu_seconds(pid) - before[k]) / dt for k, pid in pids.items()}


async def ramp(
    b: Bench,
    variant: str,
    rates: list[float],
    step_seconds: float,
    wait_ms: float,
    idle: dict[str, float],
) -> list[StepResult]:
    """Rising steps for one variant; stops after the first step found failing (a step's
    calls end ~6 s after it, so the verdict of step k is known at the end of step k+1)."""
    driver: Driver = b.driver
    await asyncio.gather(*(driver.call(variant, time.time()) for _ in range(WARMUP_CALLS)))
    await asyncio.sleep(1.0)
    launched: list[tuple[float, list[asyncio.Task[Call]], Snapshot, Snapshot]] = []
    results: list[StepResult] = []
    baseline: dict[str, float | None] = {}

    def evaluate(ready_only: bool) -> None:
        everything = [t.result() for _, ts, _, _ in launched for t in ts if t.done()]
        while len(results) < len(launched):
            rate, tasks, before, after = launched[len(results)]
            if ready_only and not all(t.done() for t in tasks):
                return
            calls = [t.result() for t in tasks]
            if not results:  # the lowest step sets the variant's quiet latencies
                ok = [c for c in calls if c.ok]
                baseline["first_media"] = percentile(
                    [c.first_media_ms for c in ok if c.first_media_ms is not None], 50
                )
                baseline["digit_to_ring"] = percentile(
                    [c.ring_ms for c in ok if c.ring_ms is not None], 50
                )
            step = summarize_step(
                variant=variant,
                rate=rate,
                calls=calls,
                everything=everything,
                before=before,
                after=after,
                idle=idle,
                baseline=baseline,
                wait_ms=wait_ms,
            )
            results.append(step)
            print(
                f"capacity: {variant} {rate:g}/s: {step.ok}/{step.calls} ok, up to "
                f"{step.concurrency_max} at once, first media p50/p99 "
                f"{step.first_media_p50_ms}/{step.first_media_p99_ms} ms, digit->ring "
                f"{step.digit_to_ring_p50_ms}/{step.digit_to_ring_p99_ms} ms, CPU/call "
                f"Asterisk {step.asterisk_ms_per_call} numcfg {step.numcfg_ms_per_call} ms, "
                f"machine {step.machine_busy_pct} % {'PASS' if step.passed else step.reason}",
                file=sys.stderr,
                flush=True,
            )

    for rate in rates:
        before = Snapshot.take(b, variant)
        tasks = await driver.offer(variant, rate, step_seconds)
        launched.append((rate, tasks, before, Snapshot.take(b, variant)))
        evaluate(ready_only=True)
        if any(not r.passed for r in results):
            break
    await asyncio.gather(*(t for _, ts, _, _ in launched for t in ts))
    evaluate(ready_only=False)
    return results


def summary(steps: list[StepResult], wait_ms: float) -> dict[str, Any]:
    out: dict[str, Any] = {"wait_ms": wait_ms}
    variants = ["dialplan", "numcfg"] + [f for f in FLOORS if any(s.variant == f for s in steps)]
    for variant in variants:
        mine = [s for s in steps if s.variant == variant]
        cap = capacity([(s.rate, s.passed) for s in mine])
        no_failure = capacity([(s.rate, s.failed == 0 and s.late == 0) for s in mine])
        first_bad = next((s for s in mine if not s.passed), None)
        # The step whose load is closest to the 50 concurrent calls.
        ref = min(
            (s for s in mine if s.ok),
            key=lambda s: abs(s.concurrency_max - REFERENCE_CONCURRENCY),
            default=None,
        )
        out[variant] = {
            "capacity_calls_per_s": cap,
            "highest_rate_without_failed_call": no_failure,
            # False: every step passed, the capacity is a lower bound (offer more).
            "saturated": first_bad is not None,
            "stopped_at": {"rate": first_bad.rate, "reason": first_bad.reason}
            if first_bad
            else None,
            "at_50_concurrent": {
                "rate": ref.rate,
                "concurrency_max": ref.concurrency_max,
                "first_media_p99_ms": ref.first_media_p99_ms,
                "digit_to_ring_p99_ms": ref.digit_to_ring_p99_ms,
            }
            if ref
            else None,
        }
    dp, nc = out["dialplan"]["capacity_calls_per_s"], out["numcfg"]["capacity_calls_per_s"]
    ref = out["numcfg"]["at_50_concurrent"] or {}
    out["capacity_ratio"] = round(nc / dp, 3) if dp else None
    for floor in FLOORS:
        if floor in out:
            # Not numcfg: what the "ARI for decisions only" design could reach at best.
            reached = out[floor]["capacity_calls_per_s"]
            out[f"{floor}_capacity_ratio"] = round(reached / dp, 3) if dp else None
    # With the dialplan variant never failing a step its capacity is only a lower bound,
    # so the ratio is an upper bound and cannot show the target met.
    out["capacity_ratio_is_upper_bound"] = not out["dialplan"]["saturated"]
    met = bool(dp) and nc / dp >= 0.75
    out["done_when"] = {
        "capacity_ratio_at_least_0.75": met if out["dialplan"]["saturated"] or not met else None,
        "p99_first_media_at_most_20_ms_at_50": (ref.get("first_media_p99_ms") or 1e9) <= 20,
    }
    return out


def table(steps: list[StepResult], s: dict[str, Any]) -> str:
    head = (
        "| variant | calls/s | calls ok | up at once (max) | first media p50 / p99 ms "
        "| digit->ring p50 / p99 ms | Asterisk ms/call | numcfg ms/call | driver ms/call "
        "| machine busy | verdict |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = [
        f"| {r.variant} | {r.rate:g} | {r.ok}/{r.calls} | {r.concurrency_max} "
        f"| {r.first_media_p50_ms} / {r.first_media_p99_ms} "
        f"| {r.digit_to_ring_p50_ms} / {r.digit_to_ring_p99_ms} | {r.asterisk_ms_per_call} "
        f"| {r.numcfg_ms_per_call} | {r.driver_ms_per_call} | {r.machine_busy_pct} % "
        f"| {'pass' if r.passed else r.reason} |"
        for r in steps
    ]
    ref = s["numcfg"]["at_50_concurrent"] or {}

    def cap(variant: str) -> str:
        # No failing step: the variant was not saturated, its capacity is at least that.
        at_least = "" if s[variant]["stopped_at"] else ">= "
        return f"{at_least}{s[variant]['capacity_calls_per_s']:g} calls/s"

    foot = (
        f"\n\n**Capacity: dialplan {cap('dialplan')}, numcfg {cap('numcfg')} (ratio "
        f"{'<= ' if s['capacity_ratio_is_upper_bound'] else ''}{s['capacity_ratio']}, "
        f"target >= 0.75). numcfg p99 time to first media at ~50 "
        f"concurrent ({ref.get('concurrency_max')} up at {ref.get('rate')}/s): "
        f"{ref.get('first_media_p99_ms')} ms (target <= 20 ms).**"
    )
    floors = [f"{f} {cap(f)} (ratio {s[f + '_capacity_ratio']})" for f in FLOORS if f in s]
    if floors:
        foot += (
            " The floors of 'ARI for decisions only' (bench/hybrid_app.py, not numcfg): "
            + ", ".join(floors)
            + "."
        )
    return head + "\n".join(rows) + foot


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates",
        default=os.environ.get("BENCH_RATES", DEFAULT_RATES),
        help=f"offered calls per second, rising (default {DEFAULT_RATES})",
    )
    parser.add_argument(
        "--step-seconds", type=float, default=float(os.environ.get("BENCH_STEP_SECONDS", 12))
    )
    parser.add_argument("--wait-ms", type=float, default=DEFAULT_WAIT_MS)
    parser.add_argument(
        "--lines", type=int, default=DEFAULT_LINES, help="numbers/menus/employees, one per call up"
    )
    parser.add_argument(
        "--order", default="dialplan,numcfg", help="variants, in the order they run"
    )
    parser.add_argument(
        "--output", default=os.environ.get("BENCH_CAPACITY_OUTPUT", "bench/capacity.json")
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--hybrid",
        action="store_true",
        default=os.environ.get("BENCH_HYBRID") == "1",
        help="also ramp the floors of 'ARI for decisions only' (bench/hybrid_app.py: prompts "
        "and digit in dialplan, the conversation in ARI (hybrid-ari) or in Dial() (hybrid))",
    )
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    if rates != sorted(rates) or rates[0] <= 0:
        parser.error("--rates must be positive and rising")

    started = time.monotonic()
    steps: list[StepResult] = []
    order = args.order.split(",")
    if args.hybrid:
        order += [floor for floor in FLOORS if floor not in order]
    floors_on = any(floor in order for floor in FLOORS)
    async with bench(slots=args.lines, keep=args.keep, hybrid=floors_on) as b:
        idle = await idle_rates(b, 3.0)
        print(
            f"capacity: Asterisk idle {1000 * idle['asterisk']:.1f} ms/s, numcfg idle "
            f"{1000 * idle['numcfg']:.1f} ms/s; rates {args.rates} x {args.step_seconds:g} s",
            file=sys.stderr,
        )
        for variant in order:
            steps += await ramp(b, variant, rates, args.step_seconds, args.wait_ms, idle)
            await asyncio.sleep(2.0)
    s = summary(steps, args.wait_ms)
    report = table(steps, s)
    print(report)
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "settings": {
            "rates": rates,
            "step_seconds": args.step_seconds,
            "wait_ms": args.wait_ms,
            "order": ",".join(order),
            "lines": args.lines,
            "idle_ms_per_s": {k: round(1000 * v, 2) for k, v in idle.items()},
            "elapsed_s": round(time.monotonic() - started, 1),
        },
        "summary": s,
        "steps": [asdict(r) for r in steps],
        "table_markdown": report,
    }
    out = Path(args.output) if Path(args.output).is_absolute() else REPO / args.output
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\ncapacity: wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
