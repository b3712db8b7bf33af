"""Queue member selection, round-robin cursor and timing helpers, by table."""

from __future__ import annotations

from collections.abc import Collection

import pytest

from asterisk_bridge.policy.queue import (
    Distribution,
    Workday,
    may_ring,
    ring_budget,
    ring_rounds,
)

TEAM = ("anna", "boris", "chloe")
EVERYONE = frozenset(TEAM)


@pytest.mark.parametrize(
    ("distribution", "available", "cursor", "rounds", "new_cursor"),
    [
        pytest.param(
            Distribution.IN_ORDER,
            EVERYONE,
            2,
            [["anna"], ["boris"], ["chloe"]],
            2,
            id="in_order always starts at the first member",
        ),
        pytest.param(
            Distribution.IN_ORDER,
            {"anna", "chloe"},
            0,
            [["anna"], ["chloe"]],
            0,
            id="in_order skips the unavailable",
        ),
        pytest.param(
            Distribution.ALL_AT_ONCE,
            EVERYONE,
            1,
            [["anna", "boris", "chloe"]],
            1,
            id="all_at_once rings everyone in one round",
        ),
        pytest.param(
            Distribution.ALL_AT_ONCE,
            {"anna", "chloe"},
            0,
            [["anna", "chloe"]],
            0,
            id="all_at_once skips the unavailable",
        ),
        pytest.param(
            Distribution.ALL_AT_ONCE,
            frozenset(),
            0,
            [],
            0,
            id="all_at_once with nobody available has no round",
        ),
        pytest.param(
            Distribution.EVENLY,
            EVERYONE,
            0,
            [["anna"], ["boris"], ["chloe"]],
            1,
            id="evenly from the cursor, next call starts after the first rung",
        ),
        pytest.param(
            Distribution.EVENLY,
            EVERYONE,
            2,
            [["chloe"], ["anna"], ["boris"]],
            0,
            id="evenly wraps around the end of the list",
        ),
        pytest.param(
            Distribution.EVENLY,
            EVERYONE,
            7,
            [["boris"], ["chloe"], ["anna"]],
            2,
            id="evenly takes an out of range cursor modulo the size",
        ),
        pytest.param(
            Distribution.EVENLY,
            {"anna"},
            1,
            [["anna"]],
            1,
            id="evenly with one available member",
        ),
        pytest.param(
            Distribution.EVENLY,
            frozenset(),
            2,
            [],
            2,
            id="evenly with nobody available keeps the cursor",
        ),
        pytest.param(
            "evenly",
            EVERYONE,
            0,
            [["anna"], ["boris"], ["chloe"]],
            1,
            id="distribution given as its config string",
        ),
    ],
)
def test_ring_rounds(
    distribution: Distribution | str,
    available: Collection[str],
    cursor: int,
    rounds: list[list[str]],
    new_cursor: int,
) -> None:
    assert ring_rounds(TEAM, distribution, available=available, cursor=cursor) == (
        rounds,
        new_cursor,
    )


def test_evenly_round_robin_across_three_calls_with_one_member_absent() -> None:
    """Boris is absent: calls alternate between Anna and Chloe as the first rung."""
    present = {"anna", "chloe"}
    cursor = 0
    firsts = []
    for expected_rounds in ([["anna"], ["chloe"]], [["chloe"], ["anna"]], [["anna"], ["chloe"]]):
        rounds, cursor = ring_rounds(TEAM, Distribution.EVENLY, available=present, cursor=cursor)
        assert rounds == expected_rounds
        firsts.append(rounds[0][0])
    assert firsts == ["anna", "chloe", "anna"]
    assert cursor == 1


def test_availability_may_be_a_predicate() -> None:
    def free(member: str) -> bool:
        return member != "boris"

    rounds, _ = ring_rounds(TEAM, Distribution.ALL_AT_ONCE, available=free, cursor=0)
    assert rounds == [["anna", "chloe"]]


@pytest.mark.parametrize("distribution", list(Distribution))
def test_duplicate_members_ring_once(distribution: Distribution) -> None:
    rounds, _ = ring_rounds(["anna", "anna", "boris"], distribution, available=EVERYONE, cursor=0)
    assert sorted(m for r in rounds for m in r) == ["anna", "boris"]


@pytest.mark.parametrize("distribution", list(Distribution))
def test_empty_queue_has_no_rounds(distribution: Distribution) -> None:
    assert ring_rounds([], distribution, available=EVERYONE, cursor=3) == ([], 3)


def test_unknown_distribution_is_refused() -> None:
    with pytest.raises(ValueError, match="random"):
        ring_rounds(TEAM, "random", available=EVERYONE, cursor=0)


@pytest.mark.parametrize(
    ("workday", "on_call", "skip_absent", "expected"),
    [
        pytest.param(Workday.WORKING, False, True, True, id="working and free"),
        pytest.param(Workday.WORKING, True, True, False, id="on a call is never rung"),
        pytest.param(Workday.PAUSED, False, True, False, id="paused is absent"),
        pytest.param(Workday.ENDED, False, True, False, id="ended is absent"),
        pytest.param(None, False, True, False, id="never started is absent"),
        pytest.param(Workday.NOT_STARTED, False, True, False, id="not started is absent"),
        pytest.param(None, False, False, True, id="absence ignored without skipping"),
        pytest.param(Workday.PAUSED, True, False, False, id="on a call even when not skipping"),
    ],
)
def test_may_ring(
    workday: Workday | None, on_call: bool, skip_absent: bool, expected: bool
) -> None:
    assert may_ring(workday=workday, on_call=on_call, skip_absent=skip_absent) is expected


@pytest.mark.parametrize(
    ("ring_time", "max_wait", "waited", "expected"),
    [
        pytest.param(15, 120, 0, 15.0, id="full ring time early in the wait"),
        pytest.param(15, 120, 110, 10.0, id="last round cut at max_wait"),
        pytest.param(15, 120, 120, 0.0, id="wait over"),
        pytest.param(15, 120, 130, 0.0, id="never negative"),
    ],
)
def test_ring_budget(ring_time: float, max_wait: float, waited: float, expected: float) -> None:
    assert ring_budget(ring_time=ring_time, max_wait=max_wait, waited=waited) == expected
