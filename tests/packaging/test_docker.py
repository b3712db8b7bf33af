"""docker/: the Compose file is valid Compose (the specification's own JSON schema, kept in
tests/packaging/data/compose-spec.json from compose-spec/compose-spec), keeps state on named
volumes, shares hold music, runs numcfg as non-root with health checks and ships a PBX config
that is not the test rig's; both entrypoints run with the mounts compose gives them
read-only, read-only for real (a private mount namespace), without a Docker daemon."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.wheel import REPO

DOCKER = REPO / "docker"
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_the_compose_file_validates_against_the_compose_specification(compose: dict) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(compose)]
    assert errors == []
    # The schema itself catches mistakes (it is not an accept-everything stand-in).
    broken = {**compose, "services": {"numcfg": {**compose["services"]["numcfg"], "user": 5}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_state_is_on_named_volumes_and_hold_music_is_shared(compose: dict) -> None:
    services = compose["services"]
    named = set(compose["volumes"])

    def mounts(service: str) -> dict[str, str]:
        return {v.split(":")[1]: v.split(":")[0] for v in services[service]["volumes"]}

    numcfg, asterisk = mounts("numcfg"), mounts("asterisk")
    assert numcfg["/var/lib/numcfg"] in named
    assert asterisk["/var/spool/asterisk"] in named and asterisk["/var/lib/asterisk"] in named
    assert numcfg["/var/lib/numcfg/hold-music"] == asterisk["/var/lib/numcfg/hold-music"]
    assert numcfg["/var/lib/asterisk/numcfg"] == asterisk["/var/lib/asterisk/numcfg"]
    # The config numcfg runs with keeps its state on that volume, not in the container.
    config = yaml.safe_load((DOCKER / "numcfg.yaml").read_text())
    assert config["store"].startswith("sqlite:////var/lib/numcfg/")
    assert all(
        path.startswith("/var/lib/numcfg/")
        for path in config["storage"].values()
        if isinstance(path, str)
    )
    # The PBX reads the uploads' classes from the shared volume.
    assert (
        "#tryinclude /var/lib/numcfg/hold-music/numcfg-moh.conf"
        in (DOCKER / "pbx/musiconhold.conf").read_text()
    )


def test_numcfg_is_not_root_and_both_have_health_checks(compose: dict) -> None:
    services = compose["services"]
    assert not services["numcfg"]["user"].startswith("0")
    assert "USER numcfg" in (DOCKER / "numcfg.Dockerfile").read_text()
    for service in services.values():
        assert service["healthcheck"]["test"][0] == "CMD"
    assert services["numcfg"]["environment"]["NUMCFG_API_TOKEN"].startswith("${NUMCFG_API_TOKEN:?")


def test_the_pbx_config_is_for_users_not_the_rigs() -> None:
    pbx = {p.name: p.read_text() for p in (DOCKER / "pbx").glob("*.conf")}
    assert not [name for name, text in pbx.items() if "numcfg-test" in text or "@ARI_" in text]
    assert "[trunk]" in pbx["pjsip.conf"] and "<trunk password>" in pbx["pjsip.conf"]
    assert "[101](phone)" in pbx["pjsip.conf"]
    assert "Goto(numcfg-inbound,${EXTEN},1)" in pbx["extensions.conf"]
    # No ARI password in any file: the entrypoint writes it from the environment.
    settings = [line for line in pbx["ari.conf"].splitlines() if not line.startswith(";")]
    assert not [line for line in settings if line.startswith("password")]
    assert "#include /run/asterisk/numcfg-ari.conf" in settings
    assert "COPY docker/pbx/ /etc/asterisk/" in (DOCKER / "Dockerfile").read_text()
    for script in ("asterisk-entrypoint.sh", "numcfg-entrypoint.sh"):
        assert "chown -R" not in (DOCKER / script).read_text()


# -- the entrypoints, with read-only mounts ---------------------------------------------------


def can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(
    not can_mount(), reason="read-only bind mounts need root and unshare (util-linux)"
)


def run_with_readonly(
    script: Path, root: Path, readonly: list[Path], env: dict[str, str], *cmd: str
) -> subprocess.CompletedProcess[str]:
    """`script cmd...` in a private mount namespace where each of `readonly` is a
    read-only bind mount of itself (what `:ro` gives a container)."""
    mounts = " && ".join(
        f"mount --bind '{p}' '{p}' && mount -o remount,bind,ro '{p}'" for p in readonly
    )
    inner = f"{mounts} && exec sh '{script}' " + " ".join(f"'{c}'" for c in cmd)
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner],
        env={"PATH": os.environ["PATH"], "NUMCFG_ENTRYPOINT_ROOT": str(root), **env},
        capture_output=True,
        text=True,
    )


@needs_mounts
def test_the_asterisk_entrypoint_leaves_read_only_mounts_alone_and_runs_asterisk(
    tmp_path: Path,
) -> None:
    root = tmp_path / "asterisk"
    etc = root / "etc/asterisk"
    shutil.copytree(DOCKER / "pbx", etc)
    for d in (
        "run/asterisk",
        "var/spool/asterisk/recording",
        "var/lib/asterisk/numcfg",
        "var/log/asterisk",
    ):
        (root / d).mkdir(parents=True)
    dialplan = root / "var/lib/asterisk/numcfg"
    before = {p: p.stat() for p in etc.rglob("*")}
    result = run_with_readonly(
        DOCKER / "asterisk-entrypoint.sh",
        root,
        [etc, dialplan, root / "var/spool/asterisk"],
        {"NUMCFG_ARI_PASSWORD": "s3cret pass!", "NUMCFG_ASTERISK_USER": "nobody"},
        "sh", "-c", "echo reached-asterisk",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "reached-asterisk"
    ari = root / "run/asterisk/numcfg-ari.conf"
    assert ari.read_text() == "[numcfg]\ntype = user\nread_only = no\npassword = s3cret pass!\n"
    assert stat.S_IMODE(ari.stat().st_mode) == 0o600 and ari.owner() == "nobody"
    assert (root / "var/log/asterisk").owner() == "nobody"  # a writable folder: Asterisk's
    assert {p: p.stat() for p in etc.rglob("*")} == before  # untouched, owner included
    refused = run_with_readonly(
        DOCKER / "asterisk-entrypoint.sh", root, [etc],
        {"NUMCFG_ARI_PASSWORD": "a;b", "NUMCFG_ASTERISK_USER": "nobody"}, "true",
    )  # fmt: skip
    assert refused.returncode == 1 and "must not contain" in refused.stderr


@needs_mounts
def test_the_numcfg_entrypoint_writes_the_dialplan_and_says_what_a_bad_mount_is(
    tmp_path: Path,
) -> None:
    root = tmp_path / "numcfg"
    config_dir = root / "etc/numcfg"
    config_dir.mkdir(parents=True)
    shutil.copy(DOCKER / "numcfg.yaml", config_dir / "numcfg.yaml")
    (root / "var/lib/numcfg").mkdir(parents=True)
    (root / "var/lib/asterisk/numcfg").mkdir(parents=True)
    env = {
        "NUMCFG_CONFIG": str(config_dir / "numcfg.yaml"),
        "NUMCFG_ARI_USER": "numcfg",
        "NUMCFG_ARI_PASSWORD": "s3cret",
        "NUMCFG_API_TOKEN": "t0ken",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    ok = run_with_readonly(
        DOCKER / "numcfg-entrypoint.sh", root, [config_dir], env, "sh", "-c", "echo reached-numcfg"
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "reached-numcfg"
    dialplan = (root / "var/lib/asterisk/numcfg/numcfg-dialplan.conf").read_text()
    assert "exten => +33185000000,1,NoOp(numcfg inbound main)" in dialplan
    state = root / "var/lib/numcfg"
    refused = run_with_readonly(
        DOCKER / "numcfg-entrypoint.sh", root, [config_dir, state], env, "true"
    )
    assert refused.returncode == 1
    assert f"{state} is not writable" in refused.stderr
