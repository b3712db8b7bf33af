"""`numcfg install-asterisk` on a scratch Asterisk tree: where each file lands, the MOH
classes as Asterisk sees their paths, idempotence, includes added once, nothing deleted."""

from __future__ import annotations

import configparser
import os
import wave
from pathlib import Path, PurePosixPath

import pytest

from asterisk_bridge.cli import main
from asterisk_bridge.install.assets import MOH_LAYOUT, Assets
from asterisk_bridge.install.asterisk import Target, install

LANGS = ["en", "fr"]
PROMPTS = ["please-hold", "welcome"]


def tone(path: Path, frames: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)
    return path


@pytest.fixture
def assets(tmp_path: Path) -> Assets:
    """A small stand-in for the rendered sounds: each file's bytes say what it is."""
    src = tmp_path / "assets"
    for lang in LANGS:
        for name in PROMPTS:
            tone(src / "prompts" / lang / f"{name}.wav", f"{lang}:{name}".encode() * 10)
    music = (
        tone(src / "moh" / "music-1.wav", b"m1" * 50),
        tone(src / "moh" / "music-2.wav", b"m2" * 50),
    )
    return Assets(src / "prompts", music)


@pytest.fixture
def target(tmp_path: Path) -> Target:
    return Target(
        etc=PurePosixPath("/etc/asterisk"),
        sounds=PurePosixPath("/usr/share/asterisk/sounds"),
        moh=PurePosixPath("/usr/share/asterisk/moh-numcfg"),
        root=tmp_path / "root",
    )


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_prompts_hold_music_and_snippets_land_where_asterisk_reads_them(
    assets: Assets, target: Target
) -> None:
    report = install(target, assets, dialplan="[numcfg-inbound]\n")
    root = target.root
    sounds = root / "usr/share/asterisk/sounds/numcfg"
    for lang in LANGS:
        for name in PROMPTS:
            assert (sounds / lang / f"{name}.wav").read_bytes() == (
                assets.prompts / lang / f"{name}.wav"
            ).read_bytes()
        moh = root / "usr/share/asterisk/moh-numcfg" / lang
        assert sorted(p.name for p in moh.iterdir()) == sorted(MOH_LAYOUT)
        hold = (assets.prompts / lang / "please-hold.wav").read_bytes()
        assert (moh / "00-please-hold.wav").read_bytes() == hold
        assert (moh / "02-please-hold.wav").read_bytes() == hold
        assert (moh / "01-music.wav").read_bytes() == assets.music[0].read_bytes()
        assert (moh / "03-music.wav").read_bytes() == assets.music[1].read_bytes()
    classes = configparser.ConfigParser(strict=True)
    classes.read(root / "etc/asterisk/numcfg-musiconhold.conf")
    assert classes.sections() == ["numcfg-en", "numcfg-fr"]
    # Paths as Asterisk sees them: the root it was written under is not in them.
    assert dict(classes["numcfg-fr"]) == {
        "mode": "files",
        "directory": "/usr/share/asterisk/moh-numcfg/fr",
        "sort": "alpha",
    }
    assert (root / "etc/asterisk/numcfg-dialplan.conf").read_text() == "[numcfg-inbound]\n"
    assert "#include numcfg-dialplan.conf" in (root / "etc/asterisk/extensions.conf").read_text()
    assert (
        "#include numcfg-musiconhold.conf" in (root / "etc/asterisk/musiconhold.conf").read_text()
    )
    assert len(report.written) == len(LANGS) * (len(PROMPTS) + len(MOH_LAYOUT)) + 2
    assert not report.unchanged
    # Asterisk runs as its own user: it can read all of it.
    assert all(p.stat().st_mode & 0o004 for p in root.rglob("*"))


def test_the_same_files_twice_change_nothing(assets: Assets, target: Target) -> None:
    install(target, assets, dialplan="[numcfg-inbound]\n")
    before = snapshot(target.root)
    report = install(target, assets, dialplan="[numcfg-inbound]\n")
    assert not report.written and not report.included and not report.changed
    assert len(report.unchanged) == len(before) - 2  # extensions.conf, musiconhold.conf
    assert snapshot(target.root) == before  # same bytes, same mtimes


def test_only_what_changed_is_rewritten(assets: Assets, target: Target) -> None:
    install(target, assets, dialplan="[numcfg-inbound]\n")
    tone(assets.prompts / "fr" / "welcome.wav", b"new words" * 10)
    report = install(target, assets, dialplan="[numcfg-inbound]\nexten => 1,1,NoOp()\n")
    etc = target.root / "etc/asterisk"
    assert sorted(report.written) == [
        etc / "numcfg-dialplan.conf",
        target.root / "usr/share/asterisk/sounds/numcfg/fr/welcome.wav",
    ]


def test_an_existing_include_is_kept_and_the_rest_of_the_file_untouched(
    assets: Assets, target: Target
) -> None:
    etc = target.root / "etc/asterisk"
    etc.mkdir(parents=True)
    own = "[general]\n\n[default]\nmode=files\ndirectory=/usr/share/asterisk/moh\n"
    (etc / "musiconhold.conf").write_text(own)
    (etc / "extensions.conf").write_text('[from-trunk]\n#tryinclude "numcfg-dialplan.conf"\n')
    report = install(target, assets, dialplan="[numcfg-inbound]\n")
    assert report.included == [etc / "musiconhold.conf"]
    text = (etc / "musiconhold.conf").read_text()
    assert text.startswith(own) and text.count("#include numcfg-musiconhold.conf") == 1
    assert (
        etc / "extensions.conf"
    ).read_text() == '[from-trunk]\n#tryinclude "numcfg-dialplan.conf"\n'
    assert not install(target, assets, dialplan="[numcfg-inbound]\n").included


def test_without_a_dialplan_or_with_no_includes_asterisk_files_are_left_alone(
    assets: Assets, target: Target
) -> None:
    report = install(target, assets, dialplan=None, add_includes=False)
    etc = target.root / "etc/asterisk"
    assert sorted(p.name for p in etc.iterdir()) == ["numcfg-musiconhold.conf"]
    assert not report.included
    install(target, assets, dialplan=None)
    assert sorted(p.name for p in etc.iterdir()) == ["musiconhold.conf", "numcfg-musiconhold.conf"]


def test_foreign_audio_in_a_class_directory_is_reported_never_deleted(
    assets: Assets, target: Target
) -> None:
    stray = tone(target.root / "usr/share/asterisk/moh-numcfg/en/zz-jingle.wav", b"x" * 20)
    report = install(target, assets, dialplan=None)
    assert stray.exists()
    assert report.warnings == [f"{stray}: not numcfg's, yet class numcfg-en will play it"]


def test_the_command_reports_what_it_wrote_then_that_nothing_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """From this checkout's rendered sounds (sounds/build, rendered by sounds/render)."""
    repo = Path(__file__).resolve().parents[2]
    if not (repo / "sounds/build/en/welcome.wav").is_file():
        pytest.skip("sounds/build not rendered (sounds/render needs espeak-ng and sox)")
    monkeypatch.setenv("NUMCFG_ARI_PASSWORD", "secret")
    args = [
        "install-asterisk",
        "-c",
        str(repo / "examples/numcfg.yaml"),
        "--root",
        str(tmp_path),
        "--etc",
        "/etc/asterisk",
        "--sounds",
        "/usr/share/asterisk/sounds",
    ]
    assert main(args) == 0
    first = capsys.readouterr().out.splitlines()
    assert f"wrote {tmp_path}/usr/share/asterisk/sounds/numcfg/en/welcome.wav" in first
    assert f"wrote {tmp_path}/usr/share/asterisk/moh-numcfg/en/01-music.wav" in first
    assert (
        "Stasis(numcfg,inbound,paris)"
        in (tmp_path / "etc/asterisk/numcfg-dialplan.conf").read_text()
    )
    assert main(args) == 0
    second = capsys.readouterr().out.splitlines()
    assert second[-1].startswith("install-asterisk: 0 written, ")
    assert not [line for line in second if line.startswith("wrote ")]


def test_a_file_that_cannot_be_written_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMCFG_ARI_PASSWORD", "secret")
    repo = Path(__file__).resolve().parents[2]
    if not (repo / "sounds/build/en/welcome.wav").is_file():
        pytest.skip("sounds/build not rendered (sounds/render needs espeak-ng and sox)")
    if os.geteuid() == 0:
        blocker = tmp_path / "etc"
        blocker.write_text("a file where a folder should be")
    else:
        (tmp_path / "etc").mkdir(mode=0o500)
    rc = main(
        [
            "install-asterisk",
            "--root",
            str(tmp_path),
            "--etc",
            "/etc/asterisk",
            "--sounds",
            "/sounds",
            "-c",
            str(repo / "examples/numcfg.yaml"),
        ]
    )
    assert rc == 1
    assert capsys.readouterr().err.startswith("numcfg install-asterisk: ")
