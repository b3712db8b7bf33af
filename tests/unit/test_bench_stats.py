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
    percentile,
    slope,
    step_verdict,
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
