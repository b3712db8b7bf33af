"""The `numcfg` command (SPEC section 5)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as distribution_version
from zoneinfo import ZoneInfo

from . import cli_admin, cli_crm, cli_holdmusic, cli_install, cli_retention, cli_users, logs
from .app import run_app
from .cli_common import config_arg, default_config_path, load_config_or_exit
from .config import ConfigError, ConfigIssue, config_json_schema, load_config, render_dialplan
from .event_loop import run_event_loop
from .store import open_store


def cmd_run(args: argparse.Namespace) -> int:
    path = args.config or default_config_path()
    try:
        run_event_loop(run_app(path))
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    path = args.config or default_config_path()
    if args.format == "json":
        return check_as_json(path)
    config = load_config_or_exit(args)
    print(
        f"{path}: OK ({len(config.numbers)} numbers, {len(config.employees)} employees, "
        f"{len(config.queues)} queues, {len(config.ivr_menus)} menus)"
    )
    return 0


def check_as_json(path: str) -> int:
    """`check --format json`: for editors and CI, one object whatever the outcome."""
    try:
        load_config(path)
        issues: list[ConfigIssue] = []
    except ConfigError as exc:
        issues = exc.issues
    except FileNotFoundError:
        issues = [ConfigIssue(file=path, line=1, col=1, path="", message="no such file")]
    print(json.dumps({"ok": not issues, "issues": [dataclasses.asdict(i) for i in issues]}))
    return 1 if issues else 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Bring the store to this release's schema (numcfg run does it too at start)."""
    config = load_config_or_exit(args)
    store = open_store(config.store)
    before, after = store.schema
    store.close()
    print(
        f"store at schema {after}"
        + (f" (was {before or 'unversioned'})" if before != after else "")
    )
    return 0


def cmd_dialplan(args: argparse.Namespace) -> int:
    sys.stdout.write(render_dialplan(load_config_or_exit(args)))
    return 0


def cmd_schema(_args: argparse.Namespace) -> int:
    print(json.dumps(config_json_schema(), indent=2))
    return 0


def parse_since(text: str, timezone: str) -> datetime:
    """An ISO 8601 date or time; without a zone it is read in the account's timezone
    (what an operator means by "since the 1st")."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since {text!r} is not a date or time: use ISO 8601, "
            "e.g. 2026-11-01, 2026-11-01T09:00 or 2026-11-01T09:00+01:00"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=ZoneInfo(timezone))


def cmd_calls(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    try:
        since = parse_since(args.since, config.account.timezone) if args.since else None
    except ValueError as exc:
        print(f"numcfg calls: {exc}", file=sys.stderr)
        return 2
    store = open_store(config.store)
    try:
        details = store.calls.recent(number=args.number, since=since, limit=args.limit)
    finally:
        store.close()
    calls = [call.to_json() for call in details]
    if args.json:
        print(json.dumps({"calls": calls}, indent=2))
        return 0
    for call in calls:
        print(
            f"{call['started_at']}  {call['number'] or '-':10} {call['direction']:8} "
            f"{call['caller'] or '-':16} {call['disposition']:11} {call['duration']:>5}s  "
            f"{' > '.join(call['route'])}"
        )
    return 0


def package_version() -> str:
    try:
        return distribution_version("numcfg")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="numcfg", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--log-json", action="store_true", help="log one JSON object a line")
    parser.add_argument("--version", action="version", version=f"numcfg {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="the service: ARI app + HTTP API")
    config_arg(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="validate the config file")
    config_arg(p)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("db", help="the store's schema")
    db_sub = p.add_subparsers(dest="db_command", required=True)
    p = db_sub.add_parser("upgrade", help="migrate the store to this release's schema")
    config_arg(p)
    p.set_defaults(func=cmd_db_upgrade)

    p = sub.add_parser("dialplan", help="print the extensions.conf contexts")
    config_arg(p)
    p.set_defaults(func=cmd_dialplan)

    p = sub.add_parser("schema", help="print the config's JSON Schema")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("calls", help="list call details")
    config_arg(p)
    p.add_argument("--number", default=None)
    p.add_argument("--since", default=None, help="ISO 8601 time")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_calls)

    # Feature commands live in their own modules, each with `register(subparsers)`.
    for module in (cli_admin, cli_crm, cli_holdmusic, cli_install, cli_retention, cli_users):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(verbose=args.verbose, json_lines=args.log_json)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
