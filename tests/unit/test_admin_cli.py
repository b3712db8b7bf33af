"""numcfg workday / number / callback: the CLI writes the store directly, no service needed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asterisk_bridge.cli import main
from asterisk_bridge.store import Store, open_store
from tests.unit.admin_fixtures import ENV, SmtpSink, closed_port_url, smtp_sink, write_config


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with smtp_sink() as sink:
        yield sink


@pytest.fixture
def config_path(tmp_path: Path, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    return write_config(tmp_path, sink.url)


@pytest.fixture
def store(config_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{config_path.parent / 'numcfg.sqlite3'}")
    yield store
    store.close()


def test_workday_commands_set_the_state(config_path: Path, store: Store, capsys) -> None:
    for action, state in [("start", "working"), ("pause", "paused"), ("resume", "working")]:
        assert main(["workday", "anna", action, "-c", str(config_path)]) == 0
        assert store.people.workday("anna") == state
    assert capsys.readouterr().out.splitlines()[-1] == "anna: working"


def test_workday_config_from_environment(
    config_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMCFG_CONFIG", str(config_path))
    assert main(["workday", "boris", "end"]) == 0
    assert store.people.workday("boris") == "ended"


def test_workday_unknown_employee_exits_1_with_the_reason(config_path: Path, capsys) -> None:
    assert main(["workday", "zoe", "start", "-c", str(config_path)]) == 1
    assert "unknown employee 'zoe'" in capsys.readouterr().err


def test_resume_without_a_started_workday_is_refused(
    config_path: Path, store: Store, capsys
) -> None:
    assert main(["workday", "anna", "resume", "-c", str(config_path)]) == 1
    assert "start it first" in capsys.readouterr().err
    assert store.people.workday("anna") is None


def test_number_disconnect_then_undo(
    config_path: Path, store: Store, sink: SmtpSink, capsys
) -> None:
    assert main(["number", "disconnect", "paris", "-c", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "paris: pending_disconnect" in out
    assert "emailed to admin@example.com" in out
    token = store.numbers.state("paris").undo_token
    assert token in sink.messages[0].get_payload()

    assert main(["number", "undo", "paris", "--token", "bad", "-c", str(config_path)]) == 1
    assert "wrong undo token" in capsys.readouterr().err
    assert main(["number", "undo", "paris", "--token", token, "-c", str(config_path)]) == 0
    assert store.numbers.state("paris").status == "active"


def test_number_disconnect_prints_the_token_when_email_fails(
    config_path: Path, store: Store, capsys
) -> None:
    config_path.write_text(_with_smtp(config_path.read_text(), closed_port_url()))
    assert main(["number", "disconnect", "lyon", "-c", str(config_path)]) == 0
    captured = capsys.readouterr()
    assert "email failed" in captured.err
    assert f"undo token: {store.numbers.state('lyon').undo_token}" in captured.out


def test_number_undo_needs_a_token(config_path: Path, capsys) -> None:
    assert main(["number", "undo", "paris", "-c", str(config_path)]) == 1
    assert "--token" in capsys.readouterr().err


def test_number_reconnect_too_early_says_when(config_path: Path, store: Store, capsys) -> None:
    then = datetime.now(UTC) - timedelta(days=3)
    store.numbers.set_state("paris", "pending_disconnect", undo_token="t", changed_at=then)
    assert main(["number", "reconnect", "paris", "-c", str(config_path)]) == 1
    assert "reconnection is allowed from" in capsys.readouterr().err


def test_callback_command_queues_a_job(config_path: Path, store: Store, capsys) -> None:
    assert main(["callback", "paris", "+33612345678", "-c", str(config_path)]) == 0
    (job,) = store.callbacks.jobs()
    assert (job.number, job.phone, job.attempts) == ("paris", "+33612345678", 5)
    assert job.id in capsys.readouterr().out


def test_callback_outside_the_allowlist_is_refused(config_path: Path, store: Store, capsys):
    assert main(["callback", "paris", "+4915112345678", "-c", str(config_path)]) == 1
    assert "external_allowlist" in capsys.readouterr().err
    assert store.callbacks.jobs() == []


def _with_smtp(text: str, url: str) -> str:
    lines = [f"  smtp: {url}" if line.startswith("  smtp:") else line for line in text.splitlines()]
    return "\n".join(lines) + "\n"
