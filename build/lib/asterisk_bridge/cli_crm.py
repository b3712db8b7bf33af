"""`numcfg crm import FILE.csv`: load contacts into the builtin CRM (SPEC section 5).

Rows are judged one by one with the same rules as POST /api/crm/contacts: good rows are
imported, bad ones are reported with their line number, so fixing a 5,000-row export means
re-running it on the refused lines only. Re-importing a phone updates its contact.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from .api.routes_crm import contact_fields
from .cli_common import config_arg, load_config_or_exit
from .crm.rules import to_e164
from .crm.service import default_region
from .store import open_store

REQUIRED_COLUMNS = ("name", "phone")
OPTIONAL_COLUMNS = ("responsible",)
# Exit codes: 0 all rows imported; 1 some refused (the others are in); 2 nothing read.
EXIT_REFUSED = 1
EXIT_UNREADABLE = 2


def register(subparsers: Any) -> None:
    crm = subparsers.add_parser("crm", help="the builtin CRM")
    crm_sub = crm.add_subparsers(dest="crm_command", required=True)
    p = crm_sub.add_parser("import", help="load contacts from a CSV (name, phone, responsible)")
    p.add_argument("file", help="CSV with a header row: name, phone, responsible")
    config_arg(p)
    p.set_defaults(func=cmd_crm_import)


def cmd_crm_import(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    path = Path(args.file)
    try:
        # utf-8-sig: spreadsheets save CSV with a byte-order mark that would rename "name".
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{path}: cannot read: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    rows, problem = read_rows(text)
    if problem is not None:
        print(f"{path}: {problem}", file=sys.stderr)
        return EXIT_UNREADABLE
    if config.crm.backend != "builtin":
        print(
            f"warning: crm.backend is {config.crm.backend}; imported contacts are not used "
            "for routing until it is builtin",
            file=sys.stderr,
        )
    contacts, refused = judge_rows(rows, config.employees, default_region(config))
    store = open_store(config.store)
    try:
        for fields in contacts:
            store.crm.add_contact(**fields)
    finally:
        store.close()
    for line, reason in refused:
        print(f"{path}:{line}: {reason}", file=sys.stderr)
    print(f"{path}: {len(contacts)} row(s) imported, {len(refused)} refused")
    return EXIT_REFUSED if refused else 0


def read_rows(text: str) -> tuple[list[tuple[int, dict[str, str]]], str | None]:
    """(line number, row) pairs, or a problem with the file as a whole."""
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = [(column or "").strip().lower() for column in (reader.fieldnames or [])]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        return [], f"header row must name the columns {', '.join(REQUIRED_COLUMNS)}" + (
            f" (and optionally {', '.join(OPTIONAL_COLUMNS)}); missing {', '.join(missing)}"
        )
    reader.fieldnames = header
    rows = []
    for row in reader:
        # reader.line_num is the physical line the row ended on (quoted fields may span).
        values = {key: (value or "").strip() for key, value in row.items() if key}
        if any(values.values()):
            rows.append((reader.line_num, values))
    return rows, None


def judge_rows(
    rows: list[tuple[int, dict[str, str]]], employees: Any, region: str | None
) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """The add_contact keywords of good rows, and (line, reason) for the others."""
    good: list[dict[str, Any]] = []
    refused: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        phone = row.get("phone", "")
        # Exports often hold national numbers ("01 85 00 00 00"): read them in the
        # country of the configured numbers.
        e164 = to_e164(phone.replace(" ", "").replace("-", "").replace(".", ""), region)
        body = {
            "name": row.get("name", ""),
            "phone": e164 or phone,
            "responsible": row.get("responsible") or None,
        }
        problem, fields = contact_fields(body, employees)
        if problem is not None:
            refused.append((line, problem[1]))
            continue
        if fields["phone"] in seen:
            refused.append(
                (line, f"phone {fields['phone']} already on line {seen[fields['phone']]}")
            )
            continue
        seen[fields["phone"]] = line
        good.append(fields)
    return good, refused
