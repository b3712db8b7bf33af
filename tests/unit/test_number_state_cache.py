"""Calls read their number's lifecycle state at most every CALL_MAX_AGE_SECONDS (one store
read per call was a tenth of numcfg's store work per call); lifecycle commands and the
API always read the store, and a change made through the same store is seen at once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from asterisk_bridge.policy.types import NumberStatus
from asterisk_bridge.store import numbers as numbers_module
from asterisk_bridge.store import open_store

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_a_recent_state_is_used_again_and_a_change_through_the_store_is_seen_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/numcfg.sqlite3"
    node, cli = open_store(url), open_store(url)  # numcfg run, and the CLI beside it
    clock = [1000.0]
    monkeypatch.setattr(numbers_module.time, "monotonic", lambda: clock[0])
    states = node.numbers
    assert states.cached("paris", max_age=2.0) is None
    assert states.state("paris", max_age=2.0).status == NumberStatus.ACTIVE

    cli.numbers.set_state("paris", NumberStatus.PENDING_DISCONNECT, undo_token="t", changed_at=NOW)
    clock[0] += 1.0
    # Another process's change: a call may go on the state read a second ago...
    assert states.state("paris", max_age=2.0).status == NumberStatus.ACTIVE
    # ...the commands never do, and a call sees it once the read is older than max_age.
    assert states.state("paris").status == NumberStatus.PENDING_DISCONNECT
    states.set_state("paris", NumberStatus.ACTIVE, undo_token=None, changed_at=NOW)
    assert states.cached("paris", max_age=2.0) is None  # this store's own change: at once
    assert states.state("paris", max_age=2.0).status == NumberStatus.ACTIVE
    cli.numbers.set_state("paris", NumberStatus.PENDING_DISCONNECT, undo_token="u", changed_at=NOW)
    clock[0] += 2.5
    assert states.state("paris", max_age=2.0).status == NumberStatus.PENDING_DISCONNECT


def test_one_read_serves_every_number_until_it_is_older_than_max_age(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site with many numbers and few calls on each: a call's read is the whole table,
    so a call on another number within max_age needs none (no thread hop)."""
    url = f"sqlite:///{tmp_path}/numcfg.sqlite3"
    node, cli = open_store(url), open_store(url)
    clock = [1000.0]
    monkeypatch.setattr(numbers_module.time, "monotonic", lambda: clock[0])
    cli.numbers.set_state("lyon", NumberStatus.PENDING_DISCONNECT, undo_token="t", changed_at=NOW)
    states = node.numbers
    assert states.state("paris", max_age=2.0).status == NumberStatus.ACTIVE
    # Read with paris's: lyon's state and a number never changed, with no store read.
    assert (lyon := states.cached("lyon", max_age=2.0)) is not None
    assert lyon.status == NumberStatus.PENDING_DISCONNECT and lyon.undo_token == "t"
    assert (nice := states.cached("nice", max_age=2.0)) is not None
    assert nice.status == NumberStatus.ACTIVE and nice.changed_at is None
    cli.numbers.set_state("nice", NumberStatus.PENDING_DISCONNECT, undo_token="u", changed_at=NOW)
    clock[0] += 2.0
    assert states.cached("nice", max_age=2.0) is None  # the snapshot is too old now
    assert states.state("nice", max_age=2.0).status == NumberStatus.PENDING_DISCONNECT
