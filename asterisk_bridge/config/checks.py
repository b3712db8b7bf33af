"""Rules that look at more than one value of a schema-valid Config (SPEC section 3).

Each rule yields (key path, message); the loader turns the path into file:line:col.
A path may end in a key the file does not contain (a default was used): the loader
then points at the nearest mapping that is there.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator

import phonenumbers

from . import formats
from .schema import (
    Action,
    Config,
    EmployeeAction,
    ForwardAction,
    MenuAction,
    QueueAction,
    RepeatAction,
    VoicemailAction,
)
from .yamlmarks import KeyPath

Finding = tuple[KeyPath, str]

# Longest first, so the message names +358 rather than +3 for a prefix like "3581".
_COUNTRY_CODES = sorted(
    (str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE), key=len, reverse=True
)


def check(config: Config) -> list[Finding]:
    findings: list[Finding] = []
    for rule in _RULES:
        findings.extend(rule(config))
    return findings


# --- actions and references -------------------------------------------------------------


def _actions(config: Config) -> Iterator[tuple[KeyPath, Action]]:
    for qid, queue in config.queues.items():
        yield ("queues", qid, "fallback"), queue.fallback
    for mid, menu in config.ivr_menus.items():
        for digits, option in menu.options.items():
            yield ("ivr_menus", mid, "options", digits), option
        yield ("ivr_menus", mid, "on_failure"), menu.on_failure
    for nid, number in config.numbers.items():
        yield ("numbers", nid, "working_hours", "after_hours"), number.working_hours.after_hours


def _check_actions(config: Config) -> Iterator[Finding]:
    for path, action in _actions(config):
        match action:
            case QueueAction(queue=queue) if queue not in config.queues:
                yield (*path, "queue"), f"unknown queue {queue!r}"
            case MenuAction(menu=menu) if menu not in config.ivr_menus:
                yield (*path, "menu"), f"unknown IVR menu {menu!r}"
            case EmployeeAction(employee=emp) | VoicemailAction(employee=emp) if (
                emp is not None and emp not in config.employees
            ):
                yield (*path, "employee"), f"unknown employee {emp!r}"
            case ForwardAction(to=to):
                yield from _allowed(config, (*path, "to"), to, "forward destination")
            case RepeatAction() if path[-2] != "options" or path[0] != "ivr_menus":
                yield (*path, "action"), "'repeat' is only allowed as an IVR menu option"


def _check_references(config: Config) -> Iterator[Finding]:
    for qid, queue in config.queues.items():
        for i, member in enumerate(queue.members):
            if member not in config.employees:
                yield ("queues", qid, "members", i), f"unknown employee {member!r}"
        if len(set(queue.members)) != len(queue.members):
            yield ("queues", qid, "members"), "an employee is listed twice"
    for nid, number in config.numbers.items():
        base: KeyPath = ("numbers", nid)
        routing = number.routing
        if routing.queue is not None and routing.queue not in config.queues:
            yield (*base, "routing", "queue"), f"unknown queue {routing.queue!r}"
        if routing.ivr is not None and routing.ivr not in config.ivr_menus:
            yield (*base, "routing", "ivr"), f"unknown IVR menu {routing.ivr!r}"
        schedule = number.working_hours.schedule
        if schedule is not None and schedule not in config.schedules:
            yield (*base, "working_hours", "schedule"), f"unknown schedule {schedule!r}"
        allowed = number.outbound.allowed_employees
        if allowed != "all":
            for i, emp in enumerate(allowed):
                if emp not in config.employees:
                    yield (*base, "outbound", "allowed_employees", i), f"unknown employee {emp!r}"
        caller_id = number.forward_caller_id
        if caller_id is not None and caller_id not in config.numbers:
            try:
                formats.e164(caller_id)
            except ValueError:
                yield (
                    (*base, "forward_caller_id"),
                    (
                        f"{caller_id!r} is neither a number id nor an E.164 number "
                        f"({formats.E164_HINT})"
                    ),
                )


# --- IVR cycles ---------------------------------------------------------------------------


def _check_cycles(config: Config) -> Iterator[Finding]:
    """A caller must never loop between menus and queues without pressing a key.

    The edges are the transitions that happen without a caller choice: a menu's
    on_failure and a queue's fallback. A digit option leading to a menu is a choice.
    """
    edges: dict[tuple[str, str], tuple[KeyPath, tuple[str, str]]] = {}
    for mid, menu in config.ivr_menus.items():
        target = _node_of(menu.on_failure)
        if target:
            edges[("menu", mid)] = (("ivr_menus", mid, "on_failure"), target)
    for qid, queue in config.queues.items():
        target = _node_of(queue.fallback)
        if target:
            edges[("queue", qid)] = (("queues", qid, "fallback"), target)
    reported: set[frozenset[tuple[str, str]]] = set()
    for start in edges:
        trail = [start]
        node = start
        while node in edges:
            node = edges[node][1]
            if node == start:
                cycle = frozenset(trail)
                if cycle not in reported:
                    reported.add(cycle)
                    steps = " -> ".join(f"{kind} {name}" for kind, name in [*trail, start])
                    yield (
                        edges[start][0],
                        (
                            f"loop without a caller choice: {steps} "
                            "(on_failure/fallback lead back here forever)"
                        ),
                    )
                break
            if node in trail:
                break  # a cycle that does not pass through start; found from its own nodes
            trail.append(node)


def _node_of(action: Action) -> tuple[str, str] | None:
    match action:
        case MenuAction(menu=menu):
            return ("menu", menu)
        case QueueAction(queue=queue):
            return ("queue", queue)
    return None


# --- numbers ------------------------------------------------------------------------------


def _check_numbers(config: Config) -> Iterator[Finding]:
    seen_numbers: dict[str, str] = {}
    for nid, number in config.numbers.items():
        base: KeyPath = ("numbers", nid)
        if number.number in seen_numbers:
            yield (
                (*base, "number"),
                (f"{number.number} is already the number of numbers.{seen_numbers[number.number]}"),
            )
        seen_numbers.setdefault(number.number, nid)
        routing = number.routing
        if routing.extension_dialing.enabled and routing.greeting is None:
            yield (
                (*base, "routing", "extension_dialing", "enabled"),
                ("extension dialing needs a greeting (callers dial during it)"),
            )
        if routing.sip_to_header and number.connection != "sip_pbx":
            yield (
                (*base, "routing", "sip_to_header"),
                (f"sip_to_header needs connection: sip_pbx (this number is {number.connection})"),
            )
        if number.backup_number is not None:
            yield from _allowed(
                config, (*base, "backup_number"), number.backup_number, "backup number"
            )


def _check_prefixes(config: Config) -> Iterator[Finding]:
    owners: dict[str, str] = {}
    for nid, number in config.numbers.items():
        prefix = number.outbound.prefix
        if prefix is None:
            continue
        path: KeyPath = ("numbers", nid, "outbound", "prefix")
        if prefix.isdigit():
            code = next((c for c in _COUNTRY_CODES if prefix.startswith(c)), None)
            if code is not None:
                yield (
                    path,
                    (
                        f"prefix {prefix!r} starts with the country calling code +{code}: a number "
                        f"dialed without '+' would be taken for this prefix; use * or #, "
                        f"e.g. '*{prefix}*'"
                    ),
                )
        if prefix in owners:
            yield path, f"prefix {prefix!r} is already used by numbers.{owners[prefix]}"
            continue
        for other, owner in owners.items():
            if other.startswith(prefix) or prefix.startswith(other):
                yield (
                    path,
                    (
                        f"prefix {prefix!r} overlaps prefix {other!r} of numbers.{owner}: "
                        "a dialed number could match both"
                    ),
                )
        owners[prefix] = nid


# --- employees, allowlist, account ------------------------------------------------------


def _check_employees(config: Config) -> Iterator[Finding]:
    owners: dict[str, str] = {}
    for eid, employee in config.employees.items():
        path: KeyPath = ("employees", eid)
        owner = owners.get(employee.extension)
        if owner is not None:
            yield (
                (*path, "extension"),
                (f"extension {employee.extension!r} is already employees.{owner}"),
            )
        owners.setdefault(employee.extension, eid)
        if employee.mobile is not None:
            yield from _allowed(config, (*path, "mobile"), employee.mobile, "mobile")


def _allowed(config: Config, path: KeyPath, phone: str, what: str) -> Iterator[Finding]:
    patterns = config.account.external_allowlist
    if not any(fnmatch.fnmatchcase(phone, pattern) for pattern in patterns):
        yield (
            path,
            (
                f"{what} {phone} is not in account.external_allowlist "
                f"({', '.join(patterns) if patterns else 'empty: nothing external allowed'})"
            ),
        )


def _check_asterisk(config: Config) -> Iterator[Finding]:
    if "{number}" not in config.asterisk.trunk:
        yield ("asterisk", "trunk"), "the trunk dial string needs {number} (the E.164 number)"
    codes = config.asterisk.workday_codes.model_dump()
    seen: dict[str, str] = {}
    for name, code in codes.items():
        if code in seen:
            yield ("asterisk", "workday_codes", name), f"{code!r} is also the {seen[code]} code"
        seen.setdefault(code, name)
    if config.crm.backend != "builtin" and not config.crm.url:
        yield ("crm", "url"), f"crm backend {config.crm.backend} needs a url"
    if config.crm.auth == "app":
        if config.crm.backend != "bitrix24":
            yield ("crm", "auth"), "auth: app is the Bitrix24 local application mode"
        for key in ("client_id", "client_secret"):
            if not getattr(config.crm, key):
                yield ("crm", key), f"auth: app needs the local application's {key}"


def _check_transcription(config: Config) -> Iterator[Finding]:
    settings = config.transcription
    if settings.backend == "openai" and not settings.url:
        yield (
            ("transcription", "url"),
            "transcription backend openai needs a url, e.g. http://127.0.0.1:8000/v1",
        )
    if settings.backend != "pocketsphinx":
        return
    for nid, number in config.numbers.items():
        language = settings.language or number.spoken_language
        if number.recording.transcribe and language != "en":
            # An English model reading French gives confident nonsense: refuse it here.
            yield (
                ("numbers", nid, "recording", "transcribe"),
                f"pocketsphinx transcribes English only and this number's language is "
                f"{language!r}: use transcription.backend openai, or transcription.language en",
            )


def _check_mail(config: Config) -> Iterator[Finding]:
    """Voicemail emails need an SMTP server to go through."""
    if config.account.smtp:
        return
    for eid, employee in config.employees.items():
        if employee.email:
            yield ("employees", eid, "email"), "voicemail email needs account.smtp"
            return


_RULES: list[Callable[[Config], Iterator[Finding]]] = [
    _check_asterisk,
    _check_employees,
    _check_references,
    _check_actions,
    _check_cycles,
    _check_numbers,
    _check_prefixes,
    _check_transcription,
    _check_mail,
]
