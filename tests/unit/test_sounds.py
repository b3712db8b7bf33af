"""sounds/: prompt texts, the render script and the music-on-hold configuration."""

from __future__ import annotations

import configparser
import importlib.machinery
import importlib.util
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SOUNDS = REPO / "sounds"
RENDER = SOUNDS / "render"
PROMPTS = SOUNDS / "prompts.yaml"
MOH_CONF = REPO / "docker" / "asterisk" / "musiconhold.conf"

LANGS = ["en", "de", "ru", "uk", "es", "pt", "fr"]
NAMES = [
    "welcome",
    "recording-warning",
    "not-in-service",
    "invalid-extension",
    "ivr-main",
    "ivr-invalid",
    "voicemail-intro",
    "after-hours",
    "rating",
    "rating-thanks",
    "please-hold",
    "queue-position",
    "goodbye",
    "transfer",
    "virtual-hold-offer",
    "virtual-hold-confirm",
    "key-0",
    "key-star",
    "key-hash",
]
# sounds/render adds spoken numbers for queue positions in every language.
NUMBERS = [f"number-{n}" for n in range(1, 21)]
MOH_FILES = ["00-please-hold.wav", "01-music.wav", "02-please-hold.wav", "03-music.wav"]

needs_tools = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox are needed to render prompts (apt-get install espeak-ng sox)",
)


def load_render_module():
    loader = importlib.machinery.SourceFileLoader("numcfg_sounds_render", str(RENDER))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def prompts() -> dict[str, dict[str, str]]:
    return yaml.safe_load(PROMPTS.read_text(encoding="utf-8"))


# --- texts -----------------------------------------------------------------------------


def test_every_prompt_is_present(prompts):
    assert sorted(prompts) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_prompt_has_every_language(prompts, name):
    texts = prompts[name]
    assert sorted(texts) == sorted(LANGS)
    for lang, text in texts.items():
        assert isinstance(text, str), f"{name}.{lang}"
        assert text.strip(), f"{name}.{lang} is empty"


def test_render_voices_cover_the_languages():
    assert sorted(load_render_module().VOICES) == sorted(LANGS)


def test_render_fallback_parser_matches_yaml(prompts):
    # The render script reads prompts.yaml without PyYAML when it is not installed.
    render = load_render_module()
    text = PROMPTS.read_text(encoding="utf-8")
    assert render._parse_simple(text, PROMPTS) == prompts


# --- musiconhold.conf ------------------------------------------------------------------


def test_musiconhold_classes():
    # '#' starts Asterisk directives (#tryinclude numcfg-moh.conf): not key=value lines.
    conf = configparser.ConfigParser(comment_prefixes=(";", "#"), inline_comment_prefixes=(";",))
    conf.read_string(MOH_CONF.read_text())
    assert conf["default"]["mode"] == "files"
    assert conf["default"]["directory"] == "/usr/share/asterisk/moh"
    for lang in LANGS:
        section = conf[f"numcfg-{lang}"]
        assert section["mode"] == "files"
        assert section["directory"] == f"/usr/share/asterisk/moh-numcfg/{lang}"
        assert section["sort"] == "alpha"
    assert not [s for s in conf.sections() if s.startswith("numcfg-upload")]


# --- rendering -------------------------------------------------------------------------


def run_render(*args: str | Path) -> str:
    proc = subprocess.run(
        [sys.executable, str(RENDER), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def assert_phone_wav(path: Path, min_seconds: float = 0.3) -> float:
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == 8000, path
        assert w.getnchannels() == 1, path
        assert w.getsampwidth() == 2, path
        assert w.getcomptype() == "NONE", path
        seconds = w.getnframes() / w.getframerate()
    # Plain PCM format tag (1), which Asterisk's format_wav requires.
    header = path.read_bytes()[:22]
    assert header[:4] == b"RIFF" and header[8:16] == b"WAVEfmt ", path
    assert int.from_bytes(header[20:22], "little") == 1, path
    assert seconds > min_seconds, f"{path}: {seconds:.2f} s"
    return seconds


@pytest.fixture(scope="module")
def fake_music(tmp_path_factory) -> Path:
    """Two CD-quality stereo WAVs standing in for the opsound directory."""
    if shutil.which("sox") is None:
        pytest.skip("sox is needed to make test music")
    d = tmp_path_factory.mktemp("music")
    for i, freq in enumerate((440, 330, 550)):
        fmt = ["-r", "44100", "-c", "2", "-b", "16"]
        dest = str(d / f"track-{i}.wav")
        subprocess.run(["sox", "-n", *fmt, dest, "synth", "5", "sine", str(freq)], check=True)
    return d


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, fake_music) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("render")
    out, moh_synth, moh_music = base / "build", base / "moh-synth", base / "moh-music"
    first = run_render("--out", out, "--moh-out", moh_synth)
    assert f"prompts: {len(NAMES + NUMBERS) * len(LANGS)} rendered" in first
    run_render("--out", out, "--moh-out", moh_music, "--moh-music", fake_music)
    return {"out": out, "moh_synth": moh_synth, "moh_music": moh_music}


@needs_tools
def test_render_prompts(rendered):
    out = rendered["out"]
    for lang in LANGS:
        files = sorted(p.name for p in (out / lang).iterdir())
        assert files == sorted(f"{name}.wav" for name in NAMES + NUMBERS), lang
        for name in NAMES + NUMBERS:
            assert_phone_wav(out / lang / f"{name}.wav")


@needs_tools
@pytest.mark.parametrize("which", ["moh_synth", "moh_music"])
def test_render_hold_music(rendered, which):
    moh = rendered[which]
    for lang in LANGS:
        d = moh / lang
        files = sorted(p.name for p in d.iterdir() if not p.name.startswith("."))
        assert files == MOH_FILES, lang
        # sort=alpha plays the prompt first.
        assert "please-hold" in files[0]
        prompt = (rendered["out"] / lang / "please-hold.wav").read_bytes()
        assert (d / files[0]).read_bytes() == prompt
        assert (d / "02-please-hold.wav").read_bytes() == prompt
        for f in files:
            seconds = assert_phone_wav(d / f)
            if "music" in f:
                assert seconds >= 4.5, f"{d / f}: {seconds:.2f} s of music"


@needs_tools
def test_render_is_idempotent(rendered):
    before = {p: p.stat().st_mtime_ns for p in rendered["out"].rglob("*.wav")}
    again = run_render("--out", rendered["out"], "--moh-out", rendered["moh_synth"])
    assert "prompts: 0 rendered" in again
    assert "hold music: 0 of" in again
    assert before == {p: p.stat().st_mtime_ns for p in rendered["out"].rglob("*.wav")}
