"""`numcfg install-asterisk`: put numcfg's prompts, hold-music classes and dialplan where
Asterisk reads them (SPEC section 13).

Idempotent: a file whose bytes are already right is left alone (not even its mtime
changes, so an Asterisk reload sees nothing new), and the report says what was written.
Writes are atomic (a temporary file beside the target, then a rename), so Asterisk never
plays or parses a half-written file.

Paths are as Asterisk sees them; `root` is prepended when writing (like DESTDIR), so an
Asterisk in a chroot or an image being built gets `directory=/usr/share/...` lines that
are right from inside it.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from .assets import Assets

MOH_SNIPPET = "numcfg-musiconhold.conf"
DIALPLAN_SNIPPET = "numcfg-dialplan.conf"
# The Asterisk files that must include our snippets, and the snippet each includes.
INCLUDES = {"extensions.conf": DIALPLAN_SNIPPET, "musiconhold.conf": MOH_SNIPPET}
# Asterisk plays every file of a class directory: audio we did not put there is reported.
AUDIO_SUFFIXES = {".wav", ".gsm", ".ulaw", ".alaw", ".sln", ".slin", ".g722", ".g729", ".mp3"}
FILE_MODE = 0o644  # Asterisk runs as its own user: it must read what root installed
DIR_MODE = 0o755

Action = Literal["written", "unchanged", "included"]


@dataclass(frozen=True, slots=True)
class Target:
    """Where numcfg's files go, as Asterisk sees them."""

    etc: PurePosixPath
    sounds: PurePosixPath
    moh: PurePosixPath
    root: Path = Path("/")

    def on_disk(self, path: PurePosixPath) -> Path:
        return self.root / path.relative_to("/") if path.is_absolute() else self.root / path


@dataclass
class Report:
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    included: list[Path] = field(default_factory=list)  # an #include line was added
    warnings: list[str] = field(default_factory=list)

    def note(self, path: Path, action: Action) -> None:
        {"written": self.written, "unchanged": self.unchanged, "included": self.included}[
            action
        ].append(path)

    @property
    def changed(self) -> bool:
        return bool(self.written or self.included)


def moh_snippet(moh: PurePosixPath, languages: list[str]) -> str:
    lines = [
        f"; numcfg hold-music classes, written by `numcfg install-asterisk` ({MOH_SNIPPET}).",
        "; A number's `hold_music: {language: xx}` plays class numcfg-xx. Do not edit:",
        "; install-asterisk rewrites this file. musiconhold.conf includes it.",
    ]
    for lang in languages:
        lines += ["", f"[numcfg-{lang}]", "mode=files", f"directory={moh / lang}", "sort=alpha"]
    return "\n".join(lines) + "\n"


def install(
    target: Target,
    assets: Assets,
    *,
    dialplan: str | None,
    add_includes: bool = True,
) -> Report:
    """Install everything; `dialplan` is `numcfg dialplan`'s text (None: not installed)."""
    report = Report()
    languages = assets.languages()
    for lang in languages:
        for source in assets.prompt_files(lang):
            dest = target.on_disk(target.sounds / "numcfg" / lang / source.name)
            report.note(dest, put(dest, source.read_bytes()))
        class_dir = target.on_disk(target.moh / lang)
        sources = assets.moh_sources(lang)
        for name, source in sources.items():
            dest = class_dir / name
            report.note(dest, put(dest, source.read_bytes()))
        report.warnings += [
            f"{stray}: not numcfg's, yet class numcfg-{lang} will play it"
            for stray in _strays(class_dir, set(sources))
        ]
    etc = target.on_disk(target.etc)
    snippet = etc / MOH_SNIPPET
    report.note(snippet, put(snippet, moh_snippet(target.moh, languages).encode()))
    if dialplan is not None:
        dest = etc / DIALPLAN_SNIPPET
        report.note(dest, put(dest, dialplan.encode()))
    if add_includes:
        for conf, included in INCLUDES.items():
            if included == DIALPLAN_SNIPPET and dialplan is None:
                continue
            path = etc / conf
            if ensure_include(path, included):
                report.note(path, "included")
    return report


def put(dest: Path, content: bytes) -> Action:
    """Write `content` to `dest` unless it already holds exactly that."""
    try:
        if dest.read_bytes() == content:
            return "unchanged"
    except FileNotFoundError:
        pass
    _makedirs(dest.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return "written"


def ensure_include(conf: Path, snippet: str) -> bool:
    """Append `#include <snippet>` to an Asterisk config file that does not include it
    yet (a missing file is created). True when the file was changed."""
    pattern = re.compile(rf'^\s*#\s*(try)?include\s+"?{re.escape(snippet)}"?\s*$', re.MULTILINE)
    try:
        text = conf.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    if pattern.search(text):
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    text += f"; numcfg (numcfg install-asterisk)\n#include {snippet}\n"
    put(conf, text.encode())
    return True


def _makedirs(path: Path) -> None:
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=DIR_MODE)
        os.chmod(directory, DIR_MODE)  # mkdir's mode is cut by the umask


def _strays(class_dir: Path, ours: set[str]) -> Iterator[Path]:
    for path in sorted(class_dir.iterdir()):
        if path.suffix.lower() in AUDIO_SUFFIXES and path.name not in ours:
            yield path
