"""Hold-music upload against the real Asterisk rig: the class appears with the file.

numcfg's side of the hold-music folder is inside the rig's chroot, and numcfg-moh.conf is
written straight into the chroot's /etc/asterisk: the layout of a host where numcfg and
Asterisk share a filesystem. Only res_musiconhold is reloaded (other tests share the rig).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from asterisk_bridge.cli import main
from asterisk_bridge.config import load_config
from asterisk_bridge.holdmusic import music_path
from tests.unit.test_holdmusic_support import make_fixtures, needs_ffmpeg

from .conftest import RIG, rig, write_config

pytestmark = [pytest.mark.integration, needs_ffmpeg]

ASTERISK_FOLDER = "/var/lib/numcfg/moh"  # as Asterisk sees it, inside the chroot
INCLUDE = "#tryinclude numcfg-moh.conf"


@pytest.fixture(scope="module")
def chroot() -> Path:
    env = {**os.environ, "NUMCFG_ARI_PASSWORD": os.environ["NUMCFG_ARI_PASSWORD"]}
    status = subprocess.run([str(RIG), "status"], env=env, capture_output=True, check=False)
    if status.returncode != 0:
        pytest.skip("the Asterisk rig is not up (docker/rig up)")
    root = Path(rig("root").strip())
    # A rig started before musiconhold.conf gained the include lacks it; add it the same
    # way (appended last). A later `docker/rig up` installs the repo's copy, which has it.
    moh_conf = root / "etc" / "asterisk" / "musiconhold.conf"
    if INCLUDE not in moh_conf.read_text().splitlines():
        with moh_conf.open("a") as out:
            out.write(f"\n{INCLUDE}\n")
    return root


@pytest.fixture(scope="module")
def mp3(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_fixtures(tmp_path_factory.mktemp("mp3"))


def moh_files() -> dict[str, list[str]]:
    """`moh show files` as {class: [file, ...]}."""
    classes: dict[str, list[str]] = {}
    current = None
    for line in rig("cli", "moh show files").splitlines():
        line = line.strip()
        if line.startswith("Class:"):
            current = line.split(":", 1)[1].strip()
            classes.setdefault(current, [])
        elif line.startswith("File:") and current is not None:
            classes[current].append(line.split(":", 1)[1].strip())
    return classes


def test_upload_becomes_an_asterisk_moh_class(
    chroot: Path, mp3: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = {
        "recordings": str(tmp_path / "recordings"),
        "voicemail": str(tmp_path / "voicemail"),
        "hold_music": f"{chroot}{ASTERISK_FOLDER}",
        "hold_music_asterisk": ASTERISK_FOLDER,
        "moh_conf": str(chroot / "etc" / "asterisk" / "numcfg-moh.conf"),
    }
    config_path = write_config(tmp_path, {"storage": storage})

    assert main(["hold-music", "paris", str(mp3["mono"]), "-c", str(config_path)]) == 0
    out, err = capsys.readouterr()
    assert "Asterisk reloaded music on hold" in out, (out, err)
    assert f"{chroot}/etc/asterisk/numcfg-moh.conf" in out

    classes = moh_files()
    assert classes.get("numcfg-upload-paris") == [f"{ASTERISK_FOLDER}/paris/music"], classes
    # The per-language classes are untouched by the reload.
    assert classes.get("numcfg-en")

    # A refused file changes nothing Asterisk plays.
    music = music_path(load_config(config_path), "paris")
    before = music.read_bytes()
    assert main(["hold-music", "paris", str(mp3["stereo"]), "-c", str(config_path)]) == 1
    assert "stereo MP3: upload a mono file" in capsys.readouterr().err
    assert music.read_bytes() == before
    assert moh_files().get("numcfg-upload-paris") == [f"{ASTERISK_FOLDER}/paris/music"]


def test_with_storage_group_asterisk_reads_what_only_its_group_may(
    chroot: Path, mp3: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The rig's Asterisk runs as the chroot's user and group "asterisk" (docker/rig -U -G),
    # a group this host does not name: storage.group takes its gid.
    groups = (line.split(":") for line in (chroot / "etc" / "group").read_text().splitlines())
    gid = next(int(fields[2]) for fields in groups if fields[0] == "asterisk")
    storage = {
        "recordings": str(tmp_path / "recordings"),
        "voicemail": str(tmp_path / "voicemail"),
        "hold_music": f"{chroot}{ASTERISK_FOLDER}",
        "hold_music_asterisk": ASTERISK_FOLDER,
        "moh_conf": str(chroot / "etc" / "asterisk" / "numcfg-moh.conf"),
        "group": gid,
    }
    config_path = write_config(tmp_path, {"storage": storage})
    assert main(["hold-music", "paris", str(mp3["mono"]), "-c", str(config_path)]) == 0
    out, err = capsys.readouterr()
    assert "Asterisk reloaded music on hold" in out, (out, err)
    music = music_path(load_config(config_path), "paris")
    for path, mode in ((music, 0o640), (music.parent, 0o750)):
        assert (path.stat().st_mode & 0o777, path.stat().st_gid) == (mode, gid), path
    conf = chroot / "etc" / "asterisk" / "numcfg-moh.conf"
    assert (conf.stat().st_mode & 0o777, conf.stat().st_gid) == (0o640, gid)
    # Asterisk, as its own user, read the class's config and lists the file.
    assert moh_files().get("numcfg-upload-paris") == [f"{ASTERISK_FOLDER}/paris/music"]
