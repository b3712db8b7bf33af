"""`numcfg purge`: retention by hand (SPEC section 13; `numcfg run` does it hourly)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from .cli_common import config_arg, load_config_or_exit
from .retention import purge
from .store import open_store


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "purge",
        help="delete recordings, voicemail and transcripts older than storage.keep_days",
        description="Delete the recordings, voicemail and transcripts of calls older than "
        "storage.keep_days (and audio files that old in those folders), noting it in each "
        "call's details (`purged`). numcfg run does the same every hour.",
    )
    config_arg(p)
    p.add_argument("--dry-run", action="store_true", help="list what would go, change nothing")
    p.set_defaults(func=cmd_purge)


def cmd_purge(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    store = open_store(config.store)
    try:
        report = purge(config, store, datetime.now(UTC), dry_run=args.dry_run)
    finally:
        store.close()
    if report is None:
        print("storage.keep_days is not set: everything is kept")
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for path in report.files:
        print(f"{verb} {path}")
    for failure in report.failed:
        print(f"not removed: {failure}")
    print(
        f"purge: {len(report.files)} file(s) {verb}, {report.calls} call(s) noted, "
        f"older than {report.cutoff.isoformat(timespec='seconds')}"
    )
    return 1 if report.failed else 0
