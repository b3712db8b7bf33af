"""Hold-music files on disk: conversion to what Asterisk plays, and atomic replacement.

Layout: <storage.hold_music>/<number-id>/music.wav, one file per number. The name comes
from the number id alone (a key of `numbers:`, already restricted to [A-Za-z0-9_-]), never
from the uploaded filename, so an upload cannot write outside its folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from ..config.schema import Config, HoldMusicFile
from .validate import MAX_BYTES, HoldMusicRejected, too_large, validate_mp3

if TYPE_CHECKING:
    from ..store import Store

MUSIC_FILE: Final = "music.wav"
# What Asterisk's file-mode MOH plays on a narrowband call without transcoding: slin8.
SAMPLE_RATE: Final = 8000
# Generous for the longest 2 MB MP3 (about 35 minutes at 8 kbit/s); a hung ffmpeg must not
# pin an API worker forever.
CONVERT_TIMEOUT_S: Final = 120.0
# Asterisk's MOH directory scan skips names starting with '.', so a half-written file is
# never picked up by a reload that happens mid-conversion.
_TEMP_PREFIX: Final = ".upload-"
_SAFE_ID: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# Asterisk runs as its own user and must read what numcfg (often root) writes: every user
# may, unless storage.group names Asterisk's group.
_FILE_MODE: Final = 0o644
_GROUP_FILE_MODE: Final = 0o640
_GROUP_FOLDER_MODE: Final = 0o750


def share_with_asterisk(config: Config, path: Path) -> None:
    """Let Asterisk read `path` (a file or folder numcfg wrote for it): its group only when
    storage.group is set (0640 / 0750), else every user (files 0644, folders as made)."""
    group = config.storage.group
    if group is None:
        if not path.is_dir():
            os.chmod(path, _FILE_MODE)
        return
    os.chown(path, -1, group)
    os.chmod(path, _GROUP_FOLDER_MODE if path.is_dir() else _GROUP_FILE_MODE)


class HoldMusicError(Exception):
    """A server-side problem (ffmpeg missing, disk full): not the uploader's fault."""


def _checked_id(number_id: str) -> str:
    # Config ids are already validated; this guards callers passing raw URL segments.
    if not _SAFE_ID.fullmatch(number_id):
        raise ValueError(f"invalid number id {number_id!r}")
    return number_id


def hold_music_folder(config: Config) -> Path:
    return Path(config.storage.hold_music).absolute()


def number_folder(config: Config, number_id: str) -> Path:
    return hold_music_folder(config) / _checked_id(number_id)


def music_path(config: Config, number_id: str) -> Path:
    return number_folder(config, number_id) / MUSIC_FILE


def asterisk_folder(config: Config) -> str:
    """The hold-music folder as Asterisk sees it (differs in a chroot or a container)."""
    return config.storage.hold_music_asterisk or str(hold_music_folder(config))


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def convert_to_wav(data: bytes, dest: Path) -> float:
    """Decode MP3 `data` into `dest` as 8 kHz mono 16-bit PCM WAV; return its seconds.

    Raises HoldMusicRejected when ffmpeg cannot decode it (a corrupt MP3 that passed the
    header checks), HoldMusicError when ffmpeg itself is unusable.
    """
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise HoldMusicError("ffmpeg is not installed: hold music cannot be converted")
    command = [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
        "-f", "mp3", "-i", "pipe:0",  # force the MP3 demuxer: the bytes were checked as MP3
        "-vn", "-map_metadata", "-1",  # no cover art, no LIST chunk: a plain 44-byte header
        "-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le",
        "-fflags", "+bitexact", "-flags:a", "+bitexact",
        "-f", "wav", "-y", str(dest),
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, input=data, capture_output=True, timeout=CONVERT_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise HoldMusicError(f"ffmpeg took over {CONVERT_TIMEOUT_S:.0f} s") from exc
    except OSError as exc:
        raise HoldMusicError(f"cannot run ffmpeg: {exc}") from exc
    if done.returncode != 0:
        reason = (done.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise HoldMusicRejected(422, "undecodable", f"the MP3 could not be decoded: {reason}")
    try:
        seconds = wav_seconds(dest)
    except (wave.Error, EOFError, OSError) as exc:
        raise HoldMusicError(f"ffmpeg wrote an unreadable WAV: {exc}") from exc
    if seconds <= 0:
        raise HoldMusicRejected(422, "no_audio", "the MP3 holds no audio")
    return seconds


@dataclass
class Staged:
    """A converted file waiting beside its destination; commit() makes it live."""

    number: str
    temp: Path
    final: Path
    seconds: float

    def commit(self) -> Path:
        # rename(2) within one folder is atomic: a call starting now plays either the old
        # file or the new one, never a partial one.
        os.replace(self.temp, self.final)
        return self.final

    def discard(self) -> None:
        self.temp.unlink(missing_ok=True)


def stage_music(config: Config, number_id: str, data: bytes) -> Staged:
    """Validate and convert `data` to a temp file in the number's folder.

    Nothing visible changes until Staged.commit(); on any error the temp file is removed
    and the previous music stays in place.
    """
    validate_mp3(data)
    folder = number_folder(config, number_id)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        share_with_asterisk(config, folder)
        fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=".wav.tmp", dir=folder)
    except OSError as exc:
        raise HoldMusicError(f"cannot write to {folder}: {exc.strerror or exc}") from exc
    os.close(fd)
    temp = Path(temp_name)
    try:
        seconds = convert_to_wav(data, temp)
        share_with_asterisk(config, temp)  # mkstemp creates 0600, unreadable to Asterisk
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return Staged(number=number_id, temp=temp, final=folder / MUSIC_FILE, seconds=seconds)


def install_music(config: Config, number_id: str, data: bytes) -> Staged:
    """stage_music + commit, for callers with no store to keep in step."""
    staged = stage_music(config, number_id, data)
    try:
        staged.commit()
    except OSError as exc:
        staged.discard()
        raise HoldMusicError(f"cannot replace {staged.final}: {exc.strerror or exc}") from exc
    return staged


PrepareAction = Literal["converted", "up to date", "upload kept", "failed"]


@dataclass(frozen=True)
class Prepared:
    number: str
    action: PrepareAction
    detail: str  # the source file, or why it failed
    seconds: float | None = None


def prepare_configured_files(config: Config, store: Store | None = None) -> list[Prepared]:
    """Convert each `hold_music: {file: ...}` into <hold_music>/<id>/music.wav.

    Run at startup and by `numcfg moh-conf`. The same rules as uploads apply. A file is
    re-converted only when the source is newer than the converted copy, so a restart is
    cheap, and a later upload (newer than the source) is not overwritten. With a store, a
    number with an upload recorded keeps it: the upload is the operator's latest choice.
    One bad file does not stop the others; each outcome is returned.
    """
    outcomes: list[Prepared] = []
    for number_id, number in config.numbers.items():
        music = number.hold_music
        if not isinstance(music, HoldMusicFile):
            continue
        source = Path(music.file)
        if store is not None and store.hold_music.upload_path(number_id) is not None:
            outcomes.append(Prepared(number_id, "upload kept", str(source)))
            continue
        final = music_path(config, number_id)
        try:
            size = source.stat().st_size
            if final.exists() and final.stat().st_mtime >= source.stat().st_mtime:
                outcomes.append(Prepared(number_id, "up to date", str(source), wav_seconds(final)))
                continue
            if size > MAX_BYTES:  # before reading: the file could be any size
                raise too_large(size)
            staged = install_music(config, number_id, source.read_bytes())
        except OSError as exc:
            outcomes.append(Prepared(number_id, "failed", f"{source}: {exc.strerror or exc}"))
        except HoldMusicRejected as exc:
            outcomes.append(Prepared(number_id, "failed", f"{source}: {exc.message}"))
        except (HoldMusicError, wave.Error, EOFError) as exc:
            outcomes.append(Prepared(number_id, "failed", f"{source}: {exc}"))
        else:
            outcomes.append(Prepared(number_id, "converted", str(source), staged.seconds))
    return outcomes
