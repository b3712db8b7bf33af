"""Retention (storage.keep_days, SPEC section 13) on a real SQLite store and real folders:
old recordings, voicemail and transcripts go and the details say so; newer ones stay;
nothing outside the two folders, nor reached through a symlink, is ever touched."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from asterisk_bridge.cli import main
from asterisk_bridge.config import Config, load_config_text
from asterisk_bridge.policy.types import Direction, Disposition
from asterisk_bridge.retention import purge
from asterisk_bridge.store import CallDetails, Store, open_store

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=40)
NEW = NOW - timedelta(days=5)


def config_for(tmp_path: Path, keep_days: int | None = 30) -> Config:
    keep = f"keep_days: {keep_days}," if keep_days else ""
    return load_config_text(
        f"""
version: 1
asterisk: {{ari_url: "http://127.0.0.1:8088/ari", username: numcfg, password: secret-pw}}
store: "sqlite:///{tmp_path}/numcfg.sqlite3"
storage: {{{keep} recordings: "{tmp_path}/rec", voicemail: "{tmp_path}/vm"}}
numbers:
  paris: {{number: "+33185000000"}}
"""
    )


def call(call_id: str, started: datetime, **changes: Any) -> CallDetails:
    values: dict[str, Any] = {
        "id": call_id,
        "number": "paris",
        "direction": Direction.INCOMING,
        "caller": "+33612345678",
        "callee": "+33185000000",
        "employee": "anna",
        "started_at": started,
        "answered_at": started,
        "ended_at": started + timedelta(minutes=1),
        "duration": 60,
        "disposition": Disposition.ANSWERED,
        "route": ("queue:sales", "employee:anna"),
        "recording": None,
        "recording_skipped": None,
        "rating": None,
        "transcript": None,
        "crm": None,
    }
    return CallDetails(**(values | changes))


def audio(path: Path, when: datetime) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF....WAVE")
    os.utime(path, (when.timestamp(), when.timestamp()))
    return path


@pytest.fixture
def world(tmp_path: Path) -> tuple[Config, Store, dict[str, Path]]:
    config = config_for(tmp_path)
    store = open_store(config.store)
    rec, vm = tmp_path / "rec", tmp_path / "vm"
    files = {
        "old_rec": audio(rec / "old.wav", OLD),
        "old_part2": audio(rec / "old-2.wav", OLD),
        "old_vm": audio(vm / "oldvm.wav", OLD),
        "new_rec": audio(rec / "new.wav", NEW),
        "new_vm": audio(vm / "newvm.wav", NEW),
        "orphan": audio(rec / "nobody.wav", OLD),  # no call names it any more
        "not_audio": audio(rec / "notes.txt", OLD),
        "outside": audio(tmp_path / "elsewhere" / "old.wav", OLD),
    }
    (rec / "link.wav").symlink_to(files["outside"])  # an old file, reached by a link
    (rec / "linked-folder").symlink_to(files["outside"].parent, target_is_directory=True)
    recording = {
        "file": "old.wav",
        "seconds": 40,
        "parts": [{"file": "old.wav", "seconds": 20}, {"file": "old-2.wav", "seconds": 20}],
    }
    store.calls.save(call("old", OLD, recording=recording, transcript="hello there"))
    store.calls.save(
        call("oldvm", OLD, disposition=Disposition.VOICEMAIL, route=("voicemail:anna",))
    )
    store.calls.save(call("oldplain", OLD))
    store.calls.save(call("new", NEW, recording={"file": "new.wav", "seconds": 9}, transcript="hi"))
    store.calls.save(
        call("newvm", NEW, disposition=Disposition.VOICEMAIL, route=("voicemail:anna",))
    )
    return config, store, files


def test_old_files_go_new_ones_stay_and_the_details_say_what_was_purged(
    world: tuple[Config, Store, dict[str, Path]],
) -> None:
    config, store, files = world
    report = purge(config, store, NOW)
    assert report is not None and report.calls == 2
    for gone in ("old_rec", "old_part2", "old_vm", "orphan"):
        assert not files[gone].exists(), gone
    for kept in ("new_rec", "new_vm", "not_audio", "outside"):
        assert files[kept].exists(), kept
    assert (Path(config.storage.recordings) / "link.wav").is_symlink()
    stamp = NOW.isoformat()
    old = store.calls.get("old")
    assert old.recording["purged_at"] == stamp and old.recording["file"] == "old.wav"
    assert old.transcript is None
    assert old.purged == {"recording": stamp, "transcript": stamp}
    assert old.to_json()["purged"] == {"recording": stamp, "transcript": stamp}
    assert store.calls.get("oldvm").purged == {"voicemail": stamp}
    assert store.calls.get("oldplain").purged == {}  # looked at: nothing to remove
    new = store.calls.get("new")
    assert new.purged is None and new.transcript == "hi" and "purged_at" not in new.recording
    # A spool replaying the old call's details does not bring its transcript back or
    # erase the note.
    store.calls.save(call("old", OLD, transcript="hello there"))
    assert store.calls.get("old").purged == {"recording": stamp, "transcript": stamp}
    # A second pass finds nothing more.
    again = purge(config, store, NOW)
    assert again is not None and again.files == [] and again.calls == 0


def test_a_dry_run_lists_and_changes_nothing(
    world: tuple[Config, Store, dict[str, Path]],
) -> None:
    config, store, files = world
    report = purge(config, store, NOW, dry_run=True)
    assert report is not None
    assert sorted(report.files) == sorted(
        [files["old_rec"], files["old_part2"], files["old_vm"], files["orphan"]]
    )
    assert all(path.exists() for path in files.values())
    assert store.calls.get("old").purged is None


def test_without_keep_days_nothing_is_purged(tmp_path: Path) -> None:
    config = config_for(tmp_path, keep_days=None)
    store = open_store(config.store)
    old = audio(tmp_path / "rec" / "old.wav", OLD)
    assert purge(config, store, NOW) is None
    assert old.exists()


def test_numcfg_purge_reports_what_it_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = tmp_path / "numcfg.yaml"
    config_file.write_text(
        "version: 1\n"
        "asterisk: {ari_url: 'http://127.0.0.1:8088/ari', username: numcfg, password: pw-secret}\n"
        f"storage: {{keep_days: 30, recordings: '{tmp_path}/rec', voicemail: '{tmp_path}/vm'}}\n"
        "numbers: {paris: {number: '+33185000000'}}\n"
    )
    old = audio(tmp_path / "rec" / "old.wav", datetime.now(UTC) - timedelta(days=31))
    assert main(["purge", "-c", str(config_file), "--dry-run"]) == 0
    assert f"would remove {old}" in capsys.readouterr().out and old.exists()
    assert main(["purge", "-c", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert f"removed {old}" in out and out.splitlines()[-1].startswith("purge: 1 file(s) removed")
    assert not old.exists()
