"""The verdict rules of the capacity run and the soak (bench/stats.py): percentiles,
when a load step fails or makes callers wait, the capacity read from the steps, and
what "flat" means for a soak."""

from __future__ import annotations

import math

import pytest

from bench.stats import (
    ari_time,
    call_equivalents,
    capacity,
    flatness,
    load_held,
    percentile,
    slope,
    soak_verdict,
    step_verdict,
    tally,
)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 99, None),
        ([7.0], 50, 7.0),
        ([1, 2, 3, 4], 50, 2),  # nearest rank: ceil(0.5 x 4) = 2nd
        ([1, 2, 3, 4, 5], 50, 3),
        (list(range(1, 101)), 99, 99),
        (list(range(1, 11)), 99, 10),  # few samples: p99 is the maximum
        ([5, 1, 4, 2, 3], 0, 1),
        ([3, 1, 2], 100, 3),
    ],
)
def test_percentile_is_a_measured_value_by_nearest_rank(
    values: list[float], q: float, expected: float | None
) -> None:
    assert percentile(values, q) == expected


def test_percentile_outside_0_100_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_ari_timestamps_keep_milliseconds_and_zone() -> None:
    a = ari_time("2026-12-01T17:24:58.981+0000")
    b = ari_time("2026-12-01T18:24:59.001+0100")
    assert round(1000 * (b - a)) == 20


def test_call_equivalents_count_only_call_time_inside_the_window() -> None:
    # Three 5 s calls: one wholly inside [10, 20], one half in, one outside.
    spans = [(11.0, 16.0), (17.5, 22.5), (30.0, 35.0)]
    assert call_equivalents(spans, 10.0, 20.0, 5.0) == pytest.approx(1.5)
    assert call_equivalents(spans, 10.0, 20.0, 0.0) == 0.0


QUIET = {"first_media": 6.0, "digit_to_ring": 2.0}


def verdict(**overrides: object) -> tuple[bool, str]:
    args: dict[str, object] = {
        "calls": 60,
        "failed": 0,
        "late": 0,
        "p99_ms": {"first_media": 40.0, "digit_to_ring": 5.0},
        "baseline_ms": QUIET,
        "wait_ms": 250.0,
    }
    args.update(overrides)
    v = step_verdict(**args)  # type: ignore[arg-type]
    return v.ok, v.reason


def test_a_step_with_every_call_through_quickly_passes() -> None:
    assert verdict() == (True, "")


def test_one_failed_call_fails_the_step() -> None:
    assert verdict(failed=1) == (False, "1/60 calls failed")


def test_a_call_that_waited_for_a_line_or_originate_fails_the_step() -> None:
    assert verdict(late=2) == (False, "2/60 calls waited for a line or originate")


def test_a_p99_above_the_variants_own_quiet_p50_plus_the_wait_fails_the_step() -> None:
    ok, reason = verdict(p99_ms={"first_media": 256.1, "digit_to_ring": 5.0})
    assert not ok
    assert reason.startswith("first_media p99 256 ms > baseline 6 + 250 ms")
    # Exactly at the limit still passes.
    assert verdict(p99_ms={"first_media": 256.0, "digit_to_ring": 5.0})[0]


def test_the_wait_is_relative_to_the_variant_so_a_slow_quiet_dialplan_passes() -> None:
    # Dialplan Answer() waits ~500 ms for media even when idle: not load.
    ok, _ = verdict(
        p99_ms={"first_media": 502.0, "digit_to_ring": 1.0},
        baseline_ms={"first_media": 501.0, "digit_to_ring": 0.0},
    )
    assert ok


def test_a_latency_never_measured_fails_the_step() -> None:
    assert verdict(p99_ms={"first_media": None, "digit_to_ring": 1.0}) == (
        False,
        "no first_media measured",
    )


def test_a_step_without_calls_fails() -> None:
    assert verdict(calls=0) == (False, "no call placed")


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([(1, True), (2, True), (4, True)], 4),
        ([(1, True), (2, True), (4, False), (6, False)], 2),
        ([(1, True), (2, False), (4, True)], 1),  # a pass above a failure is noise
        ([(1, False), (2, True)], 0),
        ([], 0),
    ],
)
def test_capacity_is_the_last_pass_below_the_first_failure(
    steps: list[tuple[float, bool]], expected: float
) -> None:
    assert capacity(steps) == expected


def samples(metric: str, values: list[float]) -> list[dict[str, float]]:
    return [{metric: v} for v in values]


def test_a_metric_within_10_percent_of_its_first_sample_after_warmup_is_flat() -> None:
    # Minute 0 (before any call) is the warm-up: 60 -> 85 MiB is the app filling up.
    (v,) = flatness(samples("rss", [60, 85, 88, 86, 90, 92]), metrics=["rss"])
    assert v.baseline == 85
    assert v.last == 91
    assert v.flat


def test_a_metric_that_grows_more_than_10_percent_is_not_flat() -> None:
    (v,) = flatness(samples("rss", [60, 85, 90, 95, 100]), metrics=["rss"])
    assert v.change == pytest.approx((97.5 - 85) / 85)
    assert not v.flat


def test_a_drop_of_more_than_10_percent_is_not_flat_either() -> None:
    (v,) = flatness(samples("rss", [60, 100, 80, 80]), metrics=["rss"])
    assert not v.flat


def test_small_counts_may_move_by_their_slack() -> None:
    fds = samples("fds", [20, 20, 22, 22])  # +10 %, within 2
    assert flatness(fds, metrics=["fds"], tolerance=0.05, slack={"fds": 2})[0].flat
    assert not flatness(fds, metrics=["fds"], tolerance=0.05)[0].flat


def test_a_metric_missing_from_a_sample_is_reported_unmeasured_not_flat() -> None:
    (v,) = flatness([{"tasks": None}, {"tasks": None}, {"tasks": None}], metrics=["tasks"])
    assert math.isnan(v.baseline)
    assert not v.flat


def test_flatness_needs_the_warmup_and_the_compared_samples() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        flatness(samples("rss", [1, 2]), metrics=["rss"])


def test_slope_is_the_least_squares_growth_per_unit() -> None:
    assert slope([(1, 100), (2, 101), (3, 102), (4, 103)]) == pytest.approx(1.0)
    assert slope([(1, 5), (2, 7), (3, 5), (4, 7)]) == pytest.approx(0.4)
    assert slope([(1, 5)]) is None
    assert slope([(2, 5), (2, 6)]) is None


# -- the soak's calls: whose doing each one was -----------------------------------------
OK = (True, True, False, "")
NO_LINE = (False, False, True, "not placed: no free line")
REFUSED = (False, False, False, "not placed: originate 503 busy")
LATE_OK = (True, True, True, "")
FAILED = (True, False, False, "not seen: employee called")
TIMEOUT = (True, False, False, "end: timeout")
LATE_FAILED = (True, False, True, "not seen: employee answered")


def test_a_call_never_placed_is_not_a_failed_call() -> None:
    t = tally([OK, NO_LINE, REFUSED])
    assert (t.offered, t.placed, t.ok, t.not_placed, t.failed) == (3, 1, 1, 2, 0)


def test_a_call_placed_on_time_that_did_not_go_through_is_failed() -> None:
    t = tally([OK, FAILED, TIMEOUT])
    assert (t.failed, t.failed_late, t.ok) == (2, 0, 1)
    assert t.reasons == {"end: timeout": 1, "not seen: employee called": 1}


def test_late_calls_are_counted_and_a_late_failure_kept_apart() -> None:
    t = tally([LATE_OK, LATE_FAILED, FAILED])
    assert (t.ok, t.late, t.failed, t.failed_late) == (1, 2, 1, 1)


def test_the_rows_of_a_soak_add_up_to_its_total() -> None:
    minutes = [[OK, NO_LINE, FAILED], [LATE_OK, OK], [TIMEOUT, REFUSED, LATE_FAILED]]
    total = tally(c for calls in minutes for c in calls)
    rows = [tally(calls) for calls in minutes]
    for field in ("offered", "placed", "ok", "failed", "failed_late", "not_placed", "late"):
        assert getattr(total, field) == sum(getattr(r, field) for r in rows), field


def test_the_load_holds_with_at_most_the_tolerated_share_not_placed_or_late() -> None:
    assert load_held(tally([OK] * 99 + [NO_LINE]), 0.01)
    assert not load_held(tally([OK] * 98 + [NO_LINE, LATE_OK]), 0.01)
    assert not load_held(tally([]), 0.01)


def test_a_soak_passes_only_with_the_load_held_no_failure_all_records_and_flat() -> None:
    good = tally([OK] * 200)
    assert soak_verdict(good, flat=True, records_missing=0, load_tolerance=0.01) == []
    assert soak_verdict(good, flat=False, records_missing=0, load_tolerance=0.01) == ["not flat"]
    assert soak_verdict(good, flat=True, records_missing=3, load_tolerance=0.01) == [
        "3 calls without their numcfg record"
    ]
    one_failed = tally([OK] * 199 + [FAILED])
    assert soak_verdict(one_failed, flat=True, records_missing=0, load_tolerance=0.01) == [
        "1 calls failed"
    ]
    # 6896 of 18000 not placed (the last session's soak on 99 lines): not run at its rate.
    starved = tally([OK] * 11104 + [NO_LINE] * 6896)
    (why,) = soak_verdict(starved, flat=True, records_missing=0, load_tolerance=0.01)
    assert why.startswith("load not held: 6896 of 18000 calls not placed")


def test_a_drop_after_the_warmup_minute_is_judged_from_the_next_sample() -> None:
    # Minute 0 before any call, minute 1 the warm-up (its sample at a transient peak):
    # the baseline is minute 2, and a leak after it still shows.
    fds = samples("fds", [26, 56, 25, 25, 25, 25])
    (v,) = flatness(fds, metrics=["fds"], warmup=2)
    assert (v.baseline, v.last, v.flat) == (25, 25, True)
    leak = samples("fds", [26, 56, 25, 27, 29, 31, 33])
    assert not flatness(leak, metrics=["fds"], warmup=2, slack={"fds": 2})[0].flat


def test_store_connections_above_the_pools_bound_fail_the_soak() -> None:
    good = tally([OK] * 200)
    within = soak_verdict(
        good,
        flat=True,
        records_missing=0,
        load_tolerance=0.01,
        store_connections=15,
        store_bound=15,
    )
    assert within == []
    (why,) = soak_verdict(
        good,
        flat=True,
        records_missing=0,
        load_tolerance=0.01,
        store_connections=16,
        store_bound=15,
    )
    assert why == "16 store connections, above the pool's 15"
