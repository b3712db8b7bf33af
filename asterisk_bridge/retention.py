"""Retention (SPEC section 13): `storage.keep_days` purges recordings, voicemail and
transcripts older than N days, and the call details keep a note of it (`purged`, and
`recording.purged_at`).

Run by `numcfg run` now and then, and by `numcfg purge`. Only files inside
storage.recordings and storage.voicemail are ever deleted, only audio files, and never
through a symlink: whatever else is in or around those folders is left alone.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from .config.schema import Config
from .policy.types import Disposition
from .store import CallDetails, Store

log = logging.getLogger("numcfg.retention")

# Calls handled per store round trip: a store of years is purged in bounded batches.
BATCH: Final = 500
# What numcfg writes in those folders (recordings, voicemail, and their partial writes).
AUDIO_SUFFIXES: Final = frozenset({".wav", ".part"})


@dataclass
class PurgeReport:
    cutoff: datetime
    calls: int = 0  # calls whose recording, voicemail or transcript was removed
    files: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def purge(
    config: Config, store: Store, now: datetime, *, dry_run: bool = False
) -> PurgeReport | None:
    """Purge what is older than storage.keep_days; None when retention is off."""
    keep_days = config.storage.keep_days
    if keep_days is None:
        return None
    report = PurgeReport(cutoff=now - timedelta(days=keep_days))
    recordings = Path(config.storage.recordings)
    voicemail = Path(config.storage.voicemail)
    stamp = now.isoformat()
    seen: set[str] = set()
    while True:
        batch = [
            c for c in store.calls.unpurged_before(report.cutoff, limit=BATCH) if c.id not in seen
        ]
        if not batch:
            break
        for details in batch:
            seen.add(details.id)
            _purge_call(details, recordings, voicemail, stamp, store, report, dry_run)
        if dry_run:
            break  # nothing was noted, so the same batch would come back
    # Files no call names any more (a store restored from an older backup, a crash between
    # file and details): by their age on disk.
    for folder in (recordings, voicemail):
        for path in _old_files(folder, report.cutoff):
            _remove(path, folder, report, dry_run)
    return report


def _purge_call(
    details: CallDetails,
    recordings: Path,
    voicemail: Path,
    stamp: str,
    store: Store,
    report: PurgeReport,
    dry_run: bool,
) -> None:
    purged: dict[str, str] = {}
    recording: dict[str, Any] | None = dict(details.recording) if details.recording else None
    ok = True
    if recording is not None and "purged_at" not in recording:
        names = {str(recording.get("file") or "")} | {
            str(part.get("file") or "") for part in recording.get("parts") or ()
        }
        ok &= all(_remove(recordings / name, recordings, report, dry_run) for name in names if name)
        recording["purged_at"] = purged["recording"] = stamp
    if details.disposition is Disposition.VOICEMAIL or (voicemail / f"{details.id}.wav").exists():
        target = voicemail / f"{details.id}.wav"
        if target.exists():
            ok &= _remove(target, voicemail, report, dry_run)
            purged["voicemail"] = stamp
    if details.transcript is not None:
        purged["transcript"] = stamp
    if not ok or dry_run:
        return
    if purged:
        report.calls += 1
    store.calls.note_purged(
        details.id, purged=purged, recording=recording, transcript_removed="transcript" in purged
    )


def _remove(path: Path, folder: Path, report: PurgeReport, dry_run: bool) -> bool:
    """Delete `path` if it is an audio file really inside `folder`. False: it should go
    and could not."""
    if path.suffix.lower() not in AUDIO_SUFFIXES or path.is_symlink():
        return True
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except OSError:
        inside = False
    if not inside or not path.is_file() or path in report.files:
        return True
    if dry_run:
        report.files.append(path)
        return True
    try:
        path.unlink()
    except FileNotFoundError:
        return True
    except OSError as exc:
        report.failed.append(f"{path}: {exc.strerror or exc}")
        log.warning("retention: %s not removed: %s", path, exc)
        return False
    report.files.append(path)
    return True


def _old_files(folder: Path, cutoff: datetime) -> list[Path]:
    if not folder.is_dir():
        return []
    old = []
    limit = cutoff.timestamp()
    # os.walk does not follow symlinked folders: nothing outside is ever reached.
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            try:
                if not path.is_symlink() and path.stat().st_mtime < limit:
                    old.append(path)
            except OSError:
                continue
    return old
