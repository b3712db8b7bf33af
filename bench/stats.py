"""Pure arithmetic of the capacity run and the soak: no I/O, no asyncio, no Asterisk.

Kept apart from the drivers so the rules that decide a verdict (when a load step has
failed or makes callers wait, what "flat" means for a soak) are unit-tested by tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100): a value that was measured, never an
    interpolation between two; None for no values. With few samples p99 is the maximum."""
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ari_time(timestamp: str) -> float:
    """An ARI event's `timestamp` ("2026-12-01T17:24:58.981+0000", Asterisk's clock,
    millisecond resolution) as POSIX seconds."""
    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def overlap(start: float, end: float, lo: float, hi: float) -> float:
    """Seconds of [start, end] inside [lo, hi]."""
    return max(0.0, min(end, hi) - max(start, lo))


def call_equivalents(
    intervals: Iterable[tuple[float, float]], lo: float, hi: float, mean_duration: float
) -> float:
    """How many whole calls' worth of call-time fell in the window [lo, hi].

    The load rises without draining between steps, so a step's CPU window holds the
    tail of the previous step's calls and misses the tail of its own: dividing its CPU
    by the call-seconds inside it (in units of one call's length) counts what the CPU
    was really spent on."""
    if mean_duration <= 0:
        return 0.0
    return sum(overlap(s, e, lo, hi) for s, e in intervals) / mean_duration


@dataclass(frozen=True)
class StepVerdict:
    ok: bool
    reason: str  # "" when ok, else why the step failed or made callers wait


def step_verdict(
    *,
    calls: int,
    failed: int,
    late: int,
    p99_ms: Mapping[str, float | None],
    baseline_ms: Mapping[str, float | None],
    wait_ms: float,
) -> StepVerdict:
    """A load step passes when no call failed, none waited for the driver (`late`: no
    free line, or the originate answered late: a backlog), and no latency's p99 exceeds
    the same variant's own p50 at the lowest step by more than `wait_ms`.

    Relative to the variant's own baseline because the two variants' quiet latencies
    differ by design (dialplan Answer() waits up to 500 ms for media; numcfg does not):
    "waits" means load made it slower, not that it is slower than the other variant."""
    if calls == 0:
        return StepVerdict(False, "no call placed")
    if failed:
        return StepVerdict(False, f"{failed}/{calls} calls failed")
    if late:
        return StepVerdict(False, f"{late}/{calls} calls waited for a line or originate")
    for name, p99 in p99_ms.items():
        base = baseline_ms.get(name)
        if p99 is None:
            return StepVerdict(False, f"no {name} measured")
        if base is not None and p99 > base + wait_ms:
            return StepVerdict(
                False, f"{name} p99 {p99:.0f} ms > baseline {base:.0f} + {wait_ms:.0f} ms"
            )
    return StepVerdict(True, "")


def capacity(steps: Sequence[tuple[float, bool]]) -> float:
    """The highest offered rate of the passing steps below the first failing one (steps
    in rising order); 0 if the first step already failed. A pass above a failure is
    noise on a shared machine, not capacity."""
    best = 0.0
    for rate, ok in steps:
        if not ok:
            break
        best = rate
    return best


@dataclass(frozen=True)
class Flatness:
    metric: str
    baseline: float
    last: float
    change: float  # relative: (last - baseline) / baseline
    flat: bool


def flatness(
    samples: Sequence[Mapping[str, float | None]],
    *,
    metrics: Sequence[str],
    warmup: int = 1,
    last: int = 2,
    tolerance: float = 0.10,
    slack: Mapping[str, float] | None = None,
) -> list[Flatness]:
    """Is each metric flat through a soak? Samples are taken once a minute, the first at
    the start of the load. The first `warmup` samples are skipped (caches, pools and the
    store filling up); the baseline is the first sample after them, and the verdict
    compares the mean of the `last` samples with it: flat when within `tolerance`
    (relative) or within `slack` units (for small counts, e.g. 2 file descriptors out
    of 30, where one more socket in flight at the sampling instant is not a leak).

    A metric missing from a sample (e.g. the task gauge on a numcfg without it) is
    reported with nan values and flat=False."""
    if len(samples) < warmup + last:
        raise ValueError(f"need at least {warmup + last} samples, got {len(samples)}")
    slack = slack or {}
    out = []
    for name in metrics:
        values = [s.get(name) for s in samples[warmup:]]
        if any(v is None for v in values):
            out.append(Flatness(name, math.nan, math.nan, math.nan, False))
            continue
        base = float(values[0])  # type: ignore[arg-type]
        tail = [float(v) for v in values[-last:]]  # type: ignore[arg-type]
        end = sum(tail) / len(tail)
        change = (end - base) / base if base else (0.0 if end == base else math.inf)
        ok = abs(change) <= tolerance or abs(end - base) <= slack.get(name, 0.0)
        out.append(Flatness(name, base, end, change, ok))
    return out


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (x, y) points; None for fewer than 2 distinct x. A soak can
    stay within 10 % and still grow steadily: the slope says by how much per minute."""
    if len({x for x, _ in points}) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


# -- the soak's calls ----------------------------------------------------------------------
@dataclass(frozen=True)
class CallTally:
    """What became of a set of offered calls, kept apart by whose doing it was.

    * ``not_placed``: the driver never got the call into Asterisk (no free line, the
      originate refused): not a call numcfg could fail.
    * ``late``: placed, but the driver itself was behind (originate answered, or the "1"
      sent, more than a second after its instant): the offered rate was not held.
    * ``failed``: placed on time and not through (not answered, an event never seen, a
      timeout): numcfg's (or Asterisk's) failure, which always counts.
    * ``failed_late``: not through, but the driver was late with it too: reported apart,
      as the failure may be the driver's own."""

    offered: int
    placed: int
    ok: int
    failed: int
    failed_late: int
    not_placed: int
    late: int
    reasons: dict[str, int]


def tally(calls: Iterable[tuple[bool, bool, bool, str]]) -> CallTally:
    """Count (placed, ok, late, error) tuples; `reasons` counts each error, its details
    (ARI's message, the events not seen) kept: they are what to look at."""
    offered = placed = ok = failed = failed_late = not_placed = late = 0
    reasons: dict[str, int] = {}
    for was_placed, was_ok, was_late, error in calls:
        offered += 1
        if error:
            reasons[error] = reasons.get(error, 0) + 1
        if not was_placed:
            not_placed += 1
            continue
        placed += 1
        late += was_late
        if was_ok:
            ok += 1
        elif was_late:
            failed_late += 1
        else:
            failed += 1
    return CallTally(
        offered, placed, ok, failed, failed_late, not_placed, late, dict(sorted(reasons.items()))
    )


def load_held(t: CallTally, tolerance: float) -> bool:
    """The driver placed the offered load: at most `tolerance` (a share) of the offered
    calls were never placed or placed late. Otherwise the soak did not run at its rate,
    whatever numcfg did."""
    return t.offered > 0 and (t.not_placed + t.late) <= tolerance * t.offered


def soak_verdict(
    t: CallTally,
    *,
    flat: bool,
    records_missing: int,
    load_tolerance: float,
    store_connections: int = 0,
    store_bound: int = 0,
) -> list[str]:
    """Why a soak did not pass; [] when it passed: the load held, no call failed (numcfg
    kept a record of each call it took), every resource stayed flat, and the store's
    connections (a pool that opens them as needed) never went above the pool's bound."""
    why = []
    if not load_held(t, load_tolerance):
        why.append(f"load not held: {t.not_placed} of {t.offered} calls not placed, {t.late} late")
    if t.failed:
        why.append(f"{t.failed} calls failed")
    if t.failed_late:
        why.append(f"{t.failed_late} calls failed with the driver late")
    if records_missing:
        why.append(f"{records_missing} calls without their numcfg record")
    if store_connections > store_bound:
        why.append(f"{store_connections} store connections, above the pool's {store_bound}")
    if not flat:
        why.append("not flat")
    return why
