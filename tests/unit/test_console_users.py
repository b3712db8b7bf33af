"""Console users: `numcfg user add|list|remove` write the store with argon2 hashes; the
hash verifies the password and nothing else; failed logins slow down; sessions rotate."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from asterisk_bridge.cli import main
from asterisk_bridge.console.passwords import hash_password, verify_password
from asterisk_bridge.console.sessions import Sessions
from asterisk_bridge.console.throttle import LoginThrottle, delay_for
from asterisk_bridge.store import open_store
from tests.unit.admin_fixtures import ENV, write_config


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    return write_config(tmp_path, "smtp://127.0.0.1:1")


def add(config_path: Path, monkeypatch: pytest.MonkeyPatch, password: str, *args: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return main(["user", "add", *args, "-c", str(config_path)])


def test_user_add_stores_an_argon2_hash_that_verifies_only_the_password(
    config_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add(config_path, monkeypatch, "s3cret-pass", "anna", "--role", "employee",
               "--employee", "anna") == 0  # fmt: skip
    assert capsys.readouterr().out == "anna: employee (anna)\n"
    store = open_store(f"sqlite:///{config_path.parent / 'numcfg.sqlite3'}")
    try:
        user = store.users.get("anna")
    finally:
        store.close()
    assert user is not None and user.role == "employee" and user.employee == "anna"
    assert user.password_hash.startswith("$argon2id$")
    assert "s3cret-pass" not in user.password_hash
    assert verify_password(user.password_hash, "s3cret-pass")
    assert not verify_password(user.password_hash, "s3cret-pasS")
    assert not verify_password(None, "s3cret-pass")  # an unknown user never verifies


def test_user_add_refusals_say_why_and_store_nothing(
    config_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add(config_path, monkeypatch, "s3cret-pass", "x", "--role", "employee") == 1
    assert "needs --employee" in capsys.readouterr().err
    assert add(config_path, monkeypatch, "s3cret-pass", "x", "--role", "employee",
               "--employee", "zoe") == 1  # fmt: skip
    assert "unknown employee 'zoe'" in capsys.readouterr().err
    assert add(config_path, monkeypatch, "short", "x", "--role", "admin") == 1
    assert "at least 8 characters" in capsys.readouterr().err
    assert add(config_path, monkeypatch, "s3cret-pass", "boss", "--role", "admin") == 0
    assert add(config_path, monkeypatch, "other-pass", "boss", "--role", "supervisor") == 1
    assert "exists" in capsys.readouterr().err
    assert main(["user", "list", "-c", str(config_path)]) == 0
    assert capsys.readouterr().out.split() == ["boss", "admin", "-"]
    assert main(["user", "remove", "boss", "-c", str(config_path)]) == 0
    assert main(["user", "remove", "boss", "-c", str(config_path)]) == 1


@pytest.mark.parametrize(
    ("failures", "delay"), [(0, 0), (2, 0), (3, 1), (4, 2), (5, 4), (8, 30), (50, 30)]
)
def test_failed_logins_wait_longer_each_time_up_to_a_cap(failures: int, delay: float) -> None:
    assert delay_for(failures) == delay


def test_the_throttle_forgets_after_its_window_and_a_success_clears_the_user() -> None:
    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for _ in range(4):
        throttle.failed("user:anna", "addr:1")
    assert throttle.delay("user:anna", "addr:2") == 2.0  # the name is slowed from anywhere
    assert throttle.delay("user:boris", "addr:1") == 2.0  # and the address for any name
    throttle.succeeded("user:anna")
    assert throttle.delay("user:anna", "addr:2") == 0.0
    now[0] += 16 * 60
    assert throttle.delay("user:boris", "addr:1") == 0.0


def test_logging_in_gives_a_new_session_id_and_csrf_token() -> None:
    sessions = Sessions()
    anonymous = sessions.anonymous()
    user = sessions.log_in(anonymous, user="anna", role="employee", employee="anna")
    assert user.id != anonymous.id and user.csrf != anonymous.csrf
    assert sessions.get(anonymous.id) is None  # a planted id is worth nothing afterwards
    assert sessions.get(user.id) is user


def test_hash_password_refuses_short_passwords() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("1234567")
