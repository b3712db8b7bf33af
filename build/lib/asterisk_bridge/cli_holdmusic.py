"""`numcfg hold-music` (SPEC section 5) and `numcfg moh-conf`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from .ari.client import AriClient
from .ari.errors import AriError
from .cli_common import config_arg, load_config_or_exit
from .config.schema import Config
from .holdmusic import (
    MAX_BYTES,
    HoldMusicError,
    HoldMusicRejected,
    moh_conf_path,
    prepare_configured_files,
    reload_moh,
    render_moh_conf,
    too_large,
    upload_hold_music,
    write_moh_conf,
)
from .store import open_store


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "hold-music",
        help="upload a number's hold music (mp3, mono, at most 2 MB)",
        description="Convert FILE.mp3 for Asterisk, make it NUMBER-ID's hold music from the "
        "next call on, rewrite numcfg-moh.conf and ask Asterisk to reload music on hold. "
        "Works whether or not `numcfg run` is up.",
    )
    config_arg(p)
    p.add_argument("number", metavar="NUMBER-ID")
    p.add_argument("file", metavar="FILE.mp3")
    p.set_defaults(func=cmd_hold_music)

    p = subparsers.add_parser(
        "moh-conf",
        help="print numcfg-moh.conf (music-on-hold classes for uploaded music)",
        description="Convert the config's `hold_music: {file: ...}` files, then print the "
        "numcfg-upload-<number-id> classes that musiconhold.conf #tryincludes. Use -o to "
        "write them (e.g. /etc/asterisk/numcfg-moh.conf) and --reload to have Asterisk "
        "read them.",
    )
    config_arg(p)
    p.add_argument("-o", "--output", default=None, help="write the file here instead")
    p.add_argument(
        "--write", action="store_true", help="write to storage.moh_conf (or its default)"
    )
    p.add_argument("--reload", action="store_true", help="ask Asterisk to reload MOH via ARI")
    p.set_defaults(func=cmd_moh_conf)


def _ari_client(config: Config) -> AriClient:
    return AriClient(
        base_url=config.asterisk.ari_url,
        username=config.asterisk.username,
        password=config.asterisk.password,
        app=config.asterisk.app,
    )


def cmd_hold_music(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    source = Path(args.file)
    if args.number not in config.numbers:
        print(f"numcfg: no number {args.number!r} in the configuration", file=sys.stderr)
        return 1
    try:
        size = source.stat().st_size
        if size > MAX_BYTES:  # before reading: the file could be any size
            raise too_large(size)
        data = source.read_bytes()
    except OSError as exc:
        print(f"numcfg: {source}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except HoldMusicRejected as exc:
        print(f"numcfg: {source}: {exc.message}", file=sys.stderr)
        return 1

    async def upload() -> Any:
        client = _ari_client(config)
        try:
            return await upload_hold_music(config, store, args.number, data, client)
        finally:
            await client.close()

    store = open_store(config.store)
    try:
        result = asyncio.run(upload())
    except HoldMusicRejected as exc:
        print(f"numcfg: {source}: {exc.message}", file=sys.stderr)
        return 1
    except HoldMusicError as exc:
        print(f"numcfg: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"{args.number}: converted {source} ({result.seconds:.1f} s) to {result.path}")
    print(f"{args.number}: callers hear MOH class {result.moh_class} from the next call on")
    if result.moh_conf:
        print(f"wrote {result.moh_conf}")
    if result.reloaded:
        print("Asterisk reloaded music on hold")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_moh_conf(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    store = open_store(config.store)
    try:
        outcomes = prepare_configured_files(config, store)
    finally:
        store.close()
    failed = False
    for outcome in outcomes:
        # stderr: stdout may be redirected into the conf file itself.
        print(f"{outcome.number}: {outcome.action}: {outcome.detail}", file=sys.stderr)
        failed = failed or outcome.action == "failed"

    target = Path(args.output) if args.output else moh_conf_path(config) if args.write else None
    if target is None:
        sys.stdout.write(render_moh_conf(config))
    else:
        try:
            written = write_moh_conf(config, target)
        except OSError as exc:
            print(f"numcfg: {target}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"wrote {written}", file=sys.stderr)

    if args.reload:

        async def reload() -> None:
            client = _ari_client(config)
            try:
                await reload_moh(client)
            finally:
                await client.close()

        try:
            asyncio.run(reload())
        except (AriError, TimeoutError) as exc:
            print(f"numcfg: Asterisk did not reload music on hold: {exc}", file=sys.stderr)
            return 1
        print("Asterisk reloaded music on hold", file=sys.stderr)
    return 1 if failed else 0
