"""`numcfg install-asterisk` (SPEC section 13)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from .cli_common import config_arg, default_config_path, load_config_or_exit
from .config import render_dialplan
from .install.assets import AssetsMissing, find_assets
from .install.asterisk import DIALPLAN_SNIPPET, INCLUDES, MOH_SNIPPET, Target, install


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "install-asterisk",
        help="install numcfg's prompts, hold-music classes and dialplan into Asterisk",
        description="Copy the prompts (sound:numcfg/<lang>/<name>) under SOUNDS/numcfg, "
        f"the hold music under MOH/<lang>, write {MOH_SNIPPET} and (from the config) "
        f"{DIALPLAN_SNIPPET} into ETC, and #include them from musiconhold.conf and "
        "extensions.conf. Files already right are left alone; run it again after each "
        "upgrade or config change, then reload Asterisk "
        "(asterisk -rx 'dialplan reload' -rx 'moh reload').",
    )
    config_arg(p)
    p.add_argument("--etc", required=True, help="Asterisk's config folder, e.g. /etc/asterisk")
    p.add_argument(
        "--sounds", required=True, help="Asterisk's sounds folder, e.g. /usr/share/asterisk/sounds"
    )
    p.add_argument(
        "--moh",
        default=None,
        help="where the numcfg-<lang> hold-music classes live (default: moh-numcfg beside "
        "SOUNDS, e.g. /usr/share/asterisk/moh-numcfg)",
    )
    p.add_argument(
        "--root",
        default="/",
        help="write under this folder; the paths above are as Asterisk sees them "
        "(a chroot, an image being built)",
    )
    p.add_argument(
        "--no-includes",
        action="store_true",
        help=f"leave {' and '.join(INCLUDES)} alone (include the snippets yourself)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print the summary only")
    p.set_defaults(func=cmd_install_asterisk)


def cmd_install_asterisk(args: argparse.Namespace) -> int:
    dialplan = _dialplan(args)
    try:
        assets = find_assets()
    except AssetsMissing as exc:
        print(f"numcfg install-asterisk: {exc}", file=sys.stderr)
        return 1
    sounds = PurePosixPath(args.sounds)
    target = Target(
        etc=PurePosixPath(args.etc),
        sounds=sounds,
        moh=PurePosixPath(args.moh) if args.moh else sounds.parent / "moh-numcfg",
        root=Path(args.root),
    )
    try:
        report = install(target, assets, dialplan=dialplan, add_includes=not args.no_includes)
    except OSError as exc:
        print(f"numcfg install-asterisk: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        for path in report.written:
            print(f"wrote {path}")
        for path in report.included:
            print(f"included numcfg's snippet in {path}")
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if dialplan is None:
        print(
            f"{DIALPLAN_SNIPPET}: not written (no config: run again with -c numcfg.yaml)",
            file=sys.stderr,
        )
    print(
        f"install-asterisk: {len(report.written)} written, {len(report.unchanged)} unchanged"
        + (
            "; now reload Asterisk: asterisk -rx 'dialplan reload' -rx 'moh reload'"
            if report.changed
            else ""
        )
    )
    return 0


def _dialplan(args: argparse.Namespace) -> str | None:
    """The dialplan of the config named by -c; without -c, of the default config when it
    exists (prompts and hold music need no config)."""
    if args.config is None and not os.path.exists(default_config_path()):
        return None
    return render_dialplan(load_config_or_exit(args))
