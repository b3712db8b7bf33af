"""packaging/systemd/numcfg.service: what an operator expects of it, and systemd's own
`systemd-analyze verify` accepts it (no message at all: a bad value is only a warning)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.wheel import REPO

UNIT = REPO / "packaging/systemd/numcfg.service"
INSTALLED_AT = "/usr/local/bin/numcfg"


def settings() -> dict[str, list[str]]:
    """Key -> values (systemd allows a key several times) of the [Service] section."""
    found: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service":
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_unit_runs_numcfg_as_its_own_user_with_state_secrets_and_reload() -> None:
    service = settings()
    assert service["User"] == ["numcfg"] and service["Group"] == ["numcfg"]
    assert service["StateDirectory"] == ["numcfg"]
    assert service["EnvironmentFile"] == ["/etc/numcfg/numcfg.env"]
    assert service["ExecStart"] == [f"{INSTALLED_AT} run"]
    assert service["ExecStartPre"] == [f"{INSTALLED_AT} db upgrade"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert service[hardening] == ["yes"], hardening
    assert service["ProtectSystem"] == ["strict"]
    assert service["CapabilityBoundingSet"] == [""]
    # Longer than numcfg's own drain (calls finish), so systemd does not cut it short.
    assert float(service["TimeoutStopSec"][0]) > 600


def test_systemd_analyze_verify_accepts_it(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    # verify checks that the commands exist: point them at this numcfg.
    numcfg = Path(sys.executable).parent / "numcfg"
    unit = tmp_path / "numcfg.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_AT, str(numcfg)))
    result = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == ""
