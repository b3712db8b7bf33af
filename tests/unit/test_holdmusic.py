"""Hold music: validation, conversion, atomic replacement, MOH classes, config, CLI."""

from __future__ import annotations

import grp
import os
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from asterisk_bridge import holdmusic
from asterisk_bridge.cli import main
from asterisk_bridge.config import ConfigError, load_config_text
from asterisk_bridge.holdmusic import (
    HoldMusicError,
    HoldMusicRejected,
    install_music,
    moh_class_for,
    prepare_configured_files,
    render_moh_conf,
    stage_music,
    validate_mp3,
    write_moh_conf,
)
from asterisk_bridge.holdmusic import files as files_module
from asterisk_bridge.store import Store, open_store
from tests.unit.test_holdmusic_support import ENV, load, make_fixtures, needs_ffmpeg, write_config

pytestmark = needs_ffmpeg


@pytest.fixture(scope="module")
def mp3(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_fixtures(tmp_path_factory.mktemp("mp3"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path}/store.sqlite3")
    yield store
    store.close()


def rejection(data: bytes) -> HoldMusicRejected:
    with pytest.raises(HoldMusicRejected) as caught:
        validate_mp3(data)
    return caught.value


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "music.wav")


# --- validation ----------------------------------------------------------------------


def test_a_mono_mp3_is_accepted(mp3: dict[str, Path]) -> None:
    info = validate_mp3(mp3["mono"].read_bytes())
    assert info.seconds == pytest.approx(2.0, abs=0.1)
    assert info.size == mp3["mono"].stat().st_size


@pytest.mark.parametrize("kind", ["stereo", "joint_stereo", "dual_channel"])
def test_stereo_is_rejected_naming_the_rule(mp3: dict[str, Path], kind: str) -> None:
    error = rejection(mp3[kind].read_bytes())
    assert (error.status, error.code) == (422, "not_mono")
    assert error.message == "stereo MP3: upload a mono file"


def test_a_wav_named_mp3_is_not_an_mp3(mp3: dict[str, Path]) -> None:
    error = rejection(mp3["wav"].read_bytes())
    assert (error.status, error.message) == (415, "not an MP3 file")


@pytest.mark.parametrize(
    "data", [b"", b"hello, this is text\n" * 50, b"OggS" + bytes(4000), bytes(range(256)) * 40]
)
def test_other_bytes_are_not_an_mp3(data: bytes) -> None:
    assert rejection(data).message == "not an MP3 file"


def test_over_2_mb_is_rejected_with_its_size(mp3: dict[str, Path]) -> None:
    data = mp3["too_big"].read_bytes()
    assert len(data) > 2 * 1024 * 1024
    error = rejection(data)
    assert (error.status, error.code) == (413, "too_large")
    assert error.message == f"{holdmusic.validate.size_text(len(data))} is over the 2 MB limit"
    # Size is checked before anything else: the bytes need not even be audio.
    assert rejection(bytes(3 * 1024 * 1024)).message == "3.0 MB is over the 2 MB limit"


def test_size_limit_is_2_mib_exactly() -> None:
    assert rejection(bytes(2 * 1024 * 1024)).code == "not_mp3"  # at the limit: size is fine
    assert rejection(bytes(2 * 1024 * 1024 + 1)).message == "2.1 MB is over the 2 MB limit"


# --- conversion and replacement --------------------------------------------------------


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path)


def test_conversion_gives_8khz_mono_16bit_wav_in_the_number_folder(
    config_path: Path, mp3: dict[str, Path]
) -> None:
    config = load(config_path)
    staged = install_music(config, "paris", mp3["mono"].read_bytes())
    assert staged.final == config_path.parent / "hold-music" / "paris" / "music.wav"
    with wave.open(str(staged.final)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.getnframes() / 8000 == pytest.approx(2.0, abs=0.1)
    assert staged.final.stat().st_mode & 0o777 == 0o644  # readable by the asterisk user
    assert leftovers(staged.final.parent) == []


def test_a_rejected_upload_leaves_the_previous_music_in_place(
    config_path: Path, mp3: dict[str, Path]
) -> None:
    config = load(config_path)
    final = install_music(config, "paris", mp3["mono"].read_bytes()).final
    before = final.read_bytes()
    for kind in ("stereo", "wav", "too_big"):
        with pytest.raises(HoldMusicRejected):
            stage_music(config, "paris", mp3[kind].read_bytes())
    assert final.read_bytes() == before
    assert leftovers(final.parent) == []


def test_a_failed_conversion_leaves_the_previous_music_in_place(
    config_path: Path, mp3: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load(config_path)
    final = install_music(config, "paris", mp3["mono"].read_bytes()).final
    before = final.read_bytes()
    # An "ffmpeg" that fails, as it would on an MP3 whose frames are corrupt.
    monkeypatch.setattr(files_module.shutil, "which", lambda _name: "/bin/false")
    with pytest.raises(HoldMusicRejected) as caught:
        install_music(config, "paris", mp3["mono_other"].read_bytes())
    assert (caught.value.status, caught.value.code) == (422, "undecodable")
    monkeypatch.setattr(files_module.shutil, "which", lambda _name: None)
    with pytest.raises(HoldMusicError, match="ffmpeg is not installed"):
        install_music(config, "paris", mp3["mono_other"].read_bytes())
    assert final.read_bytes() == before
    assert leftovers(final.parent) == []


def test_a_staged_file_is_invisible_until_committed(
    config_path: Path, mp3: dict[str, Path]
) -> None:
    config = load(config_path)
    final = install_music(config, "paris", mp3["mono"].read_bytes()).final
    before = final.read_bytes()
    staged = stage_music(config, "paris", mp3["mono_other"].read_bytes())
    # Asterisk's MOH directory scan skips dot files: a reload now would not see it.
    assert staged.temp.parent == final.parent and staged.temp.name.startswith(".")
    assert final.read_bytes() == before
    staged.commit()
    assert final.read_bytes() != before
    assert leftovers(final.parent) == []


def test_destination_comes_from_the_number_id_only(config_path: Path) -> None:
    config = load(config_path)
    with pytest.raises(ValueError):
        holdmusic.music_path(config, "../etc")


# --- MOH classes -------------------------------------------------------------------------


def test_moh_class_for_follows_upload_then_file_then_language(tmp_path: Path) -> None:
    numbers = {
        "paris": {"number": "+33185000000"},
        "berlin": {"number": "+49301234567", "hold_music": {"language": "de"}},
        "lyon": {"number": "+33472000000", "hold_music": {"file": "music/lyon.mp3"}},
    }
    config = load(write_config(tmp_path, numbers=numbers))
    assert moh_class_for(config, "paris", uploaded=False) == "numcfg-en"
    assert moh_class_for(config, "berlin", uploaded=False) == "numcfg-de"
    assert moh_class_for(config, "berlin", uploaded=True) == "numcfg-upload-berlin"
    assert moh_class_for(config, "lyon", uploaded=False) == "numcfg-upload-lyon"
    with pytest.raises(KeyError):
        moh_class_for(config, "nowhere", uploaded=False)


def test_render_moh_conf_has_a_files_class_per_number_where_asterisk_sees_it(
    tmp_path: Path,
) -> None:
    numbers = {"paris": {"number": "+33185000000"}, "lyon": {"number": "+33472000000"}}
    storage = {"hold_music": "moh", "hold_music_asterisk": "/var/lib/numcfg/moh/"}
    text = render_moh_conf(load(write_config(tmp_path, numbers=numbers, storage=storage)))
    assert "[numcfg-upload-paris]\nmode=files\ndirectory=/var/lib/numcfg/moh/paris\n" in text
    assert "[numcfg-upload-lyon]\nmode=files\ndirectory=/var/lib/numcfg/moh/lyon\n" in text
    # Included after the last class of musiconhold.conf: nothing but comments may come
    # before the first section, or it would be added to that class.
    head = text.split("[", 1)[0]
    assert all(not line or line.startswith(";") for line in head.splitlines())


def test_hold_music_asterisk_defaults_to_the_numcfg_side_folder(config_path: Path) -> None:
    config = load(config_path)
    assert config.storage.hold_music == str(config_path.parent / "hold-music")
    assert holdmusic.asterisk_folder(config) == config.storage.hold_music
    assert f"directory={config_path.parent}/hold-music/paris\n" in render_moh_conf(config)


def test_storage_paths_resolve_beside_the_config(tmp_path: Path) -> None:
    config = load(write_config(tmp_path, storage={"hold_music": "m", "moh_conf": "x.conf"}))
    assert config.storage.hold_music == str(tmp_path / "m")
    assert config.storage.moh_conf == str(tmp_path / "x.conf")
    assert holdmusic.moh_conf_path(config) == tmp_path / "x.conf"
    default = load(write_config(tmp_path))
    assert holdmusic.moh_conf_path(default) == tmp_path / "hold-music" / "numcfg-moh.conf"


@pytest.mark.parametrize("bad", ["relative/moh", "/var/lib/moh;x", "/var/lib/moh\n[evil]"])
def test_hold_music_asterisk_must_be_a_clean_absolute_path(bad: str) -> None:
    # It is written into numcfg-moh.conf: a newline would inject a section.
    doc = {
        "version": 1,
        "asterisk": {"ari_url": "http://127.0.0.1:8088/ari", "username": "u", "password": "p"},
        "storage": {"hold_music_asterisk": bad},
    }
    with pytest.raises(ConfigError) as caught:
        load_config_text(yaml.safe_dump(doc))
    assert any("storage.hold_music_asterisk" in str(issue) for issue in caught.value.issues)


def test_write_moh_conf_replaces_through_a_symlink(config_path: Path, tmp_path: Path) -> None:
    config = load(config_path)
    real = tmp_path / "shared" / "numcfg-moh.conf"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "etc-asterisk-numcfg-moh.conf"
    link.symlink_to(real)
    assert write_moh_conf(config, link) == real
    assert link.is_symlink() and link.read_text() == render_moh_conf(config)
    assert real.stat().st_mode & 0o777 == 0o644


# --- configured {file: ...} ---------------------------------------------------------------


def test_prepare_configured_files_converts_once_and_reports_bad_files(
    tmp_path: Path, mp3: dict[str, Path], store: Store
) -> None:
    (tmp_path / "music").mkdir()
    (tmp_path / "music" / "lyon.mp3").write_bytes(mp3["mono"].read_bytes())
    (tmp_path / "music" / "nice.mp3").write_bytes(mp3["stereo"].read_bytes())
    numbers = {
        "paris": {"number": "+33185000000"},
        "lyon": {"number": "+33472000000", "hold_music": {"file": "music/lyon.mp3"}},
        "nice": {"number": "+33493000000", "hold_music": {"file": "music/nice.mp3"}},
        "brest": {"number": "+33298000000", "hold_music": {"file": "music/missing.mp3"}},
    }
    config = load(write_config(tmp_path, numbers=numbers))
    first = {p.number: p for p in prepare_configured_files(config)}
    assert set(first) == {"lyon", "nice", "brest"}
    assert first["lyon"].action == "converted"
    assert first["lyon"].seconds == pytest.approx(2.0, abs=0.1)
    assert holdmusic.music_path(config, "lyon").is_file()
    assert first["nice"].action == "failed"
    assert first["nice"].detail.endswith("nice.mp3: stereo MP3: upload a mono file")
    assert first["brest"].action == "failed" and "No such file" in first["brest"].detail
    assert not holdmusic.music_path(config, "nice").exists()

    again = {p.number: p.action for p in prepare_configured_files(config)}
    assert again["lyon"] == "up to date"

    store.hold_music.set_upload_path("lyon", str(holdmusic.music_path(config, "lyon")))
    kept = {p.number: p.action for p in prepare_configured_files(config, store)}
    assert kept["lyon"] == "upload kept"


# --- CLI ----------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)


def test_cli_hold_music_installs_and_says_what_it_did(
    config_path: Path, mp3: dict[str, Path], cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["hold-music", "paris", str(mp3["mono"]), "-c", str(config_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    config = load(config_path)
    music = holdmusic.music_path(config, "paris")
    assert f"paris: converted {mp3['mono']} (2.0 s) to {music}" in out
    assert "MOH class numcfg-upload-paris" in out
    conf = holdmusic.moh_conf_path(config)
    assert f"wrote {conf}" in out and "[numcfg-upload-paris]" in conf.read_text()
    # The example config's ARI is pointed at a closed port here: a warning, not a failure.
    assert "Asterisk did not reload music on hold" in err
    with _store(config.store) as store:
        assert store.hold_music.upload_path("paris") == str(music)


class _store:
    """open_store as a context manager, for one-off reads in tests."""

    def __init__(self, url: str) -> None:
        self.store = open_store(url)

    def __enter__(self) -> Store:
        return self.store

    def __exit__(self, *_exc: object) -> None:
        self.store.close()


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("stereo", "stereo MP3: upload a mono file"),
        ("wav", "not an MP3 file"),
        ("too_big", "MB is over the 2 MB limit"),
    ],
)
def test_cli_hold_music_refuses_a_bad_file_with_the_reason(
    config_path: Path,
    mp3: dict[str, Path],
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    message: str,
) -> None:
    assert main(["hold-music", "paris", str(mp3["mono"]), "-c", str(config_path)]) == 0
    music = holdmusic.music_path(load(config_path), "paris")
    before = music.read_bytes()
    capsys.readouterr()
    assert main(["hold-music", "paris", str(mp3[kind]), "-c", str(config_path)]) == 1
    err = capsys.readouterr().err
    assert f"{mp3[kind]}: " in err and message in err
    assert music.read_bytes() == before


def test_cli_hold_music_unknown_number(
    config_path: Path, mp3: dict[str, Path], cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hold-music", "tokyo", str(mp3["mono"]), "-c", str(config_path)]) == 1
    assert "no number 'tokyo'" in capsys.readouterr().err


def test_cli_moh_conf_prints_or_writes_the_classes(
    config_path: Path, cli_env: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["moh-conf", "-c", str(config_path)]) == 0
    assert capsys.readouterr().out == render_moh_conf(load(config_path))
    target = tmp_path / "etc" / "numcfg-moh.conf"
    assert main(["moh-conf", "-c", str(config_path), "-o", str(target)]) == 0
    assert target.read_text() == render_moh_conf(load(config_path))
    assert main(["moh-conf", "-c", str(config_path), "--reload"]) == 1  # ARI port closed
    assert "did not reload" in capsys.readouterr().err


def test_musiconhold_conf_includes_the_generated_classes_last() -> None:
    # Last: the generated file holds only sections, so nothing after it may belong to one.
    conf = Path(__file__).resolve().parents[2] / "docker" / "asterisk" / "musiconhold.conf"
    lines = [line.strip() for line in conf.read_text().splitlines() if line.strip()]
    assert lines[-1] == "#tryinclude numcfg-moh.conf"
    assert not any(line.startswith("[numcfg-upload-") for line in lines)


@needs_ffmpeg
def test_with_storage_group_uploads_are_that_groups_only(
    tmp_path: Path, mp3: dict[str, Path]
) -> None:
    gid = os.getgid()  # root's own group here: any gid would do as root, this one anywhere
    config = load(write_config(tmp_path, storage={"group": gid}))
    staged = install_music(config, "paris", mp3["mono"].read_bytes())
    assert staged.final.stat().st_mode & 0o777 == 0o640
    assert staged.final.stat().st_gid == gid
    assert staged.final.parent.stat().st_mode & 0o777 == 0o750
    conf = write_moh_conf(config)
    assert conf.stat().st_mode & 0o777 == 0o640 and conf.stat().st_gid == gid


def test_storage_group_names_a_group_of_this_host(tmp_path: Path) -> None:
    name = grp.getgrgid(os.getgid()).gr_name
    assert load(write_config(tmp_path, storage={"group": name})).storage.group == os.getgid()
    with pytest.raises(ConfigError) as caught:
        load(write_config(tmp_path, storage={"group": "no-such-group-here"}))
    assert "storage.group" in str(caught.value) and "no such group" in str(caught.value)
