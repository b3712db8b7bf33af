"""CLI polish (issue 14): --version, and dates that are validated instead of tracebacks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from asterisk_bridge.cli import main, parse_since
from tests.unit.admin_fixtures import ENV, write_config


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("numcfg ")


def test_a_date_without_zone_is_read_in_the_account_timezone() -> None:
    since = parse_since("2026-11-01", "Europe/Paris")
    assert since.astimezone(UTC) == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    assert parse_since("2026-11-01T09:00+00:00", "Europe/Paris").hour == 9


def test_calls_since_a_plain_date_lists_and_a_bad_one_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    config = write_config(tmp_path, "smtp://127.0.0.1:1")
    assert main(["calls", "-c", str(config), "--since", "2026-11-01"]) == 0
    assert main(["calls", "-c", str(config), "--since", "1st of November"]) == 2
    err = capsys.readouterr().err
    assert "--since '1st of November' is not a date or time" in err
    assert "Traceback" not in err


def test_check_as_json_lists_every_issue_with_its_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "numcfg.yaml"
    bad.write_text("version: 1\nasterisk: {ari_url: x}\n")
    assert main(["check", "-c", str(bad), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert {"file", "line", "col", "path", "message"} <= set(report["issues"][0])
    assert {i["path"] for i in report["issues"]} >= {"asterisk.username", "asterisk.ari_url"}


def test_check_as_json_of_a_good_file_is_ok(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    config = write_config(tmp_path, "smtp://127.0.0.1:1")
    assert main(["check", "-c", str(config), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "issues": []}
