"""Commands that change state: workday, number lifecycle, callback, apply (SPEC section 5).

They open the store named by the config and write to it directly, so they work whether or
not `numcfg run` is up; the service reads the store on every call and sees the change at
once. Refusals print their reason on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import admin
from .cli_common import config_arg, default_config_path, load_config_or_exit
from .config import Config, ConfigError, load_config
from .lifecycle import WORKDAY_ACTIONS, LifecycleError
from .store import Store, open_store


def register(sub: Any) -> None:
    p = sub.add_parser("workday", help="set an employee's workday state")
    config_arg(p)
    p.add_argument("employee", help="employee id (a key of employees:)")
    p.add_argument("action", choices=WORKDAY_ACTIONS)
    p.set_defaults(func=cmd_workday)

    p = sub.add_parser("number", help="number lifecycle: disconnect, undo, reconnect")
    config_arg(p)
    p.add_argument("action", choices=("disconnect", "undo", "reconnect", "show"))
    p.add_argument("number", help="number id (a key of numbers:)")
    p.add_argument("--token", default=None, help="undo: the token from the admin email")
    p.set_defaults(func=cmd_number)

    p = sub.add_parser("callback", help="request a callback from a number to a phone")
    config_arg(p)
    p.add_argument("number", help="number id (a key of numbers:)")
    p.add_argument("phone", help="E.164, inside account.external_allowlist")
    p.set_defaults(func=cmd_callback)

    p = sub.add_parser("apply", help="publish a validated config to a shared store")
    config_arg(p)
    p.add_argument(
        "--store", default=None, help="store URL (default: the store: of the config itself)"
    )
    p.set_defaults(func=cmd_apply)


def cmd_workday(args: argparse.Namespace) -> int:
    with _admin_store(args) as (config, store):
        view = _refusable(lambda: admin.set_workday(store, config, args.employee, args.action))
    if view is None:
        return 1
    print(f"{view['id']}: {view['workday']}")
    return 0


def cmd_number(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    with _admin_store(args) as (config, store):
        if args.action == "undo" and not args.token:
            print("undo needs --token (from the admin email)", file=sys.stderr)
            return 1
        actions: dict[str, Callable[[], dict[str, Any]]] = {
            "show": lambda: admin.number_view(config, store, args.number, now),
            "disconnect": lambda: admin.disconnect_number(store, config, args.number, now),
            "undo": lambda: admin.undo_disconnect(store, config, args.number, args.token, now),
            "reconnect": lambda: admin.reconnect_number(store, config, args.number, now),
        }
        view = _refusable(actions[args.action])
    if view is None:
        return 1
    print(f"{view['id']}: {view['status']}")
    lifecycle = view["lifecycle"]
    for key in ("undo_until", "disconnected_at", "reconnect_allowed_at"):
        if lifecycle.get(key):
            print(f"  {key.replace('_', ' ')}: {lifecycle[key]}")
    email = view.get("email")
    if email and email["sent"]:
        print(f"  undo token emailed to {email['to']}")
    elif email:
        # Not stdout-only: the token must reach the operator even if stdout is discarded.
        print(f"  email failed: {email['error']}", file=sys.stderr)
        print(f"  undo token: {view['undo_token']}")
    return 0


def cmd_callback(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    with _admin_store(args) as (config, store):
        job = _refusable(
            lambda: admin.request_callback(store, config, args.number, args.phone, now)
        )
    if job is None:
        return 1
    print(json.dumps(job.to_json(), indent=2))
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    path = Path(args.config or default_config_path())
    try:
        # Validated with this machine's environment: ${VAR}s must be set here too. The text
        # is published as written, so secrets stay in each node's environment, not the store.
        text = path.read_text(encoding="utf-8")
        config = load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{path}: cannot read: {exc}", file=sys.stderr)
        return 1
    url = args.store or config.store
    store = open_store(url)
    try:
        version = store.config_versions.publish(text)
    finally:
        store.close()
    print(f"{path}: published as version {version}")
    return 0


@contextmanager
def _admin_store(args: argparse.Namespace) -> Iterator[tuple[Config, Store]]:
    config = load_config_or_exit(args)
    store = open_store(config.store)
    try:
        yield config, store
    finally:
        store.close()


def _refusable(action: Callable[[], Any]) -> Any:
    """Run `action`; on a refusal print its reason and return None."""
    try:
        return action()
    except LifecycleError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return None
