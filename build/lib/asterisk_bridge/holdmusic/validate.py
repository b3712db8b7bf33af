"""Is an uploaded file acceptable hold music? (SPEC section 6: MP3, mono, at most 2 MB.)

Pure: looks only at the bytes it is given. Each rejection names the rule broken, in words
an operator uploading a file understands, and carries the HTTP status the API answers.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Final

from mutagen import MutagenError
from mutagen.mp3 import MONO, MP3

MAX_BYTES: Final = 2 * 1024 * 1024
MAX_MB_TEXT: Final = "2 MB"

# Containers mutagen's frame scanner could in theory find a stray MPEG sync inside; a file
# that starts like one of these is not an MP3 whatever its name says.
_OTHER_FORMATS: Final[tuple[tuple[int, bytes], ...]] = (
    (0, b"RIFF"),  # WAV, AVI
    (0, b"OggS"),  # Ogg Vorbis / Opus
    (0, b"fLaC"),
    (0, b"FORM"),  # AIFF
    (4, b"ftyp"),  # MP4 / M4A
    (0, b"\x1aE\xdf\xa3"),  # Matroska / WebM
    (0, b"#!AMR"),
    (0, b"\x30\x26\xb2\x75"),  # ASF / WMA
)


class HoldMusicRejected(Exception):
    """The file breaks one of the upload rules; `message` says which."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Mp3Info:
    size: int  # bytes
    seconds: float  # as the MP3 headers say; the converted WAV is authoritative
    sample_rate: int
    bitrate: int  # bits per second


def size_text(size: int) -> str:
    # Rounded up, so 2 MB and one byte reads "2.1 MB", never a baffling "2.0 MB is over".
    return f"{math.ceil(size / (1024 * 1024) * 10) / 10:.1f} MB"


def too_large(size: int) -> HoldMusicRejected:
    return HoldMusicRejected(413, "too_large", f"{size_text(size)} is over the {MAX_MB_TEXT} limit")


def validate_mp3(data: bytes) -> Mp3Info:
    """Return what the MP3 headers say, or raise HoldMusicRejected naming the rule broken.

    Size first: it needs no parsing, and the API must not parse a huge body.
    """
    if len(data) > MAX_BYTES:
        raise too_large(len(data))
    not_mp3 = HoldMusicRejected(415, "not_mp3", "not an MP3 file")
    if not data or any(data[at : at + len(magic)] == magic for at, magic in _OTHER_FORMATS):
        raise not_mp3
    try:
        info = MP3(fileobj=io.BytesIO(data)).info
    except (MutagenError, EOFError, ValueError) as exc:
        raise not_mp3 from exc
    # mutagen.mp3 also reads MPEG layer I/II (.mp2) files; those are not MP3.
    if info.layer != 3 or info.length <= 0:
        raise not_mp3
    # Phones are mono; a stereo file would be downmixed silently and out-of-phase channels
    # can cancel out. The contract asks the uploader for a mono file instead.
    if info.mode != MONO:
        raise HoldMusicRejected(422, "not_mono", "stereo MP3: upload a mono file")
    return Mp3Info(
        size=len(data),
        seconds=float(info.length),
        sample_rate=int(info.sample_rate),
        bitrate=int(info.bitrate),
    )
