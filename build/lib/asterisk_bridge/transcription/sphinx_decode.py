"""The child process of sphinx.py: `python -m asterisk_bridge.transcription.sphinx_decode
FILE.wav` prints the words spoken in FILE, or one line of error on stderr (exit 1).

The audio is cut at pauses (pocketsphinx's voice-activity segmenter) and each stretch of
speech decoded as one utterance: a long conversation is read as the sentences it is made
of, not as one hour-long utterance.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

from pocketsphinx import Decoder, Segmenter

from .audio import SAMPLE_RATE, pcm16k
from .base import TranscriptionError

# Below the calls' own process: on a busy host, Asterisk and numcfg go first.
NICENESS = 10


def transcribe(path: Path) -> str:
    pcm = pcm16k(path)
    try:
        decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
    except RuntimeError as exc:
        raise TranscriptionError(f"pocketsphinx cannot start: {exc}") from exc
    words: list[str] = []
    for segment in Segmenter(sample_rate=SAMPLE_RATE).segment(io.BytesIO(pcm)):
        decoder.start_utt()
        decoder.process_raw(segment.pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        if hypothesis is not None and hypothesis.hypstr:
            words.append(hypothesis.hypstr)
    return " ".join(words)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m asterisk_bridge.transcription.sphinx_decode FILE", file=sys.stderr)
        return 2
    os.nice(NICENESS)
    try:
        print(transcribe(Path(argv[0])))
    except TranscriptionError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
