"""`numcfg user add|list|remove`: the web console's users (SPEC section 11).

They live in the store, so a running service sees a new user at once.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from .cli_common import config_arg, load_config_or_exit
from .console.passwords import hash_password
from .store import open_store
from .store.users import ROLES, UserExists


def register(sub: Any) -> None:
    p = sub.add_parser("user", help="web console users")
    user_sub = p.add_subparsers(dest="user_command", required=True)
    p = user_sub.add_parser("add", help="add a console user (password asked, or from stdin)")
    config_arg(p)
    p.add_argument("name")
    p.add_argument("--role", choices=ROLES, required=True)
    p.add_argument("--employee", default=None, help="employee id (required for --role employee)")
    p.set_defaults(func=cmd_user_add)
    p = user_sub.add_parser("list", help="list console users")
    config_arg(p)
    p.set_defaults(func=cmd_user_list)
    p = user_sub.add_parser("remove", help="remove a console user")
    config_arg(p)
    p.add_argument("name")
    p.set_defaults(func=cmd_user_remove)


def read_password() -> str:
    """Asked twice on a terminal; the first line of stdin otherwise (scripts)."""
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_user_add(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    if args.role == "employee" and not args.employee:
        print("error: --role employee needs --employee ID", file=sys.stderr)
        return 1
    if args.employee is not None and args.employee not in config.employees:
        print(f"error: unknown employee {args.employee!r}", file=sys.stderr)
        return 1
    try:
        password_hash = hash_password(read_password())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    store = open_store(config.store)
    try:
        store.users.add(
            args.name, password_hash=password_hash, role=args.role, employee=args.employee
        )
    except UserExists as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"{args.name}: {args.role}" + (f" ({args.employee})" if args.employee else ""))
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    store = open_store(config.store)
    try:
        users = store.users.all()
    finally:
        store.close()
    for user in users:
        print(f"{user.name:20} {user.role:10} {user.employee or '-'}")
    return 0


def cmd_user_remove(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    store = open_store(config.store)
    try:
        removed = store.users.remove(args.name)
    finally:
        store.close()
    if not removed:
        print(f"error: no console user named {args.name!r}", file=sys.stderr)
        return 1
    print(f"{args.name}: removed")
    return 0
