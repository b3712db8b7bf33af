"""Load a config file: YAML with positions, ${VAR}, schema, then cross-checks.

Every stage reports into one list, so `numcfg check` shows all mistakes of a file at
once, each as file:line:col: path: message.
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
import typing
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from . import checks
from .errors import ConfigError, ConfigIssue
from .schema import Config
from .yamlmarks import Document, KeyPath, Pos, YamlSyntaxError, parse

__all__ = ["ConfigError", "ConfigIssue", "load_config", "load_config_text"]

# Values shorter than this are not blanked out of messages: masking "1" or "en" would
# garble every message while protecting nothing worth protecting.
_MIN_SECRET_LEN = 4


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([ConfigIssue(str(path), 1, 1, "", f"cannot read: {reason}")]) from None
    config = load_config_text(text, filename=str(path), env=env, base_dir=path.resolve().parent)
    config._source_path = path.resolve()
    return config


def load_config_text(
    text: str,
    *,
    filename: str = "numcfg.yaml",
    env: Mapping[str, str] | None = None,
    base_dir: str | Path | None = None,
) -> Config:
    env = os.environ if env is None else env
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    try:
        doc = parse(text, env)
    except YamlSyntaxError as exc:
        issue = ConfigIssue(filename, exc.pos.line, exc.pos.col, "", exc.message)
        raise ConfigError([issue]) from None
    issues = [_issue(filename, p.path, p.pos, p.message, doc.data) for p in doc.problems]
    if not isinstance(doc.data, dict):
        issues.append(_issue(filename, (), Pos(1, 1), "the file must be a mapping of keys"))
        raise ConfigError(_finish(issues, doc.secrets))
    try:
        config = Config.model_validate(doc.data, context={"base_dir": base})
    except ValidationError as exc:
        issues += _union_merged([_from_pydantic(filename, doc, err) for err in exc.errors()])
        config = None
    checked = (config, set()) if config is not None else _recover(doc.data, base)
    if checked is not None:
        model, tainted = checked
        issues += [
            _issue(filename, path, _position(doc, path), message, doc.data)
            for path, message in checks.check(model)
            if path[:2] not in tainted
        ]
    if issues or config is None:
        raise ConfigError(_finish(issues, doc.secrets))
    return config


# How many times schema errors are pruned away to reach a Config the cross-checks can
# read. Each round removes every key pydantic rejected; nested fallout is rare.
_RECOVERY_ROUNDS = 3


def _recover(data: dict[Hashable, Any], base: Path) -> tuple[Config, set[KeyPath]] | None:
    """A Config without the keys the schema rejected, so cross-checks still run.

    An operator should see all of a file's mistakes in one `numcfg check`, not the
    reference errors only after fixing a typo. Unknown keys are simply dropped; a bad
    value is dropped too (its default takes over), but then findings about the same
    entity (e.g. numbers.paris) are not trusted, since the default may cause them.
    A missing required key cannot be made up, so then no cross-check runs.
    """
    data = copy.deepcopy(data)
    tainted: set[KeyPath] = set()
    for _ in range(_RECOVERY_ROUNDS):
        try:
            return Config.model_validate(data, context={"base_dir": base}), tainted
        except ValidationError as exc:
            for err in exc.errors():
                path, rest = _walk(data, err["loc"])
                if rest or not path or isinstance(path[-1], int) or err["type"] == "missing":
                    return None  # nothing safe to prune: a missing key, a list item, a dict key
                _delete(data, path)
                if err["type"] != "extra_forbidden":
                    tainted.add(path[:2])
    return None


def _delete(data: Any, path: KeyPath) -> None:
    node = data
    for part in path[:-1]:
        node = _child(node, part)
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _finish(issues: list[ConfigIssue], secrets: set[str]) -> list[ConfigIssue]:
    # A missing ${VAR} leaves its placeholder in place; errors about that placeholder
    # would only repeat the first complaint in a confusing way.
    env_paths = {i.path for i in issues if i.message.startswith("environment variable")}
    kept = [
        i for i in issues if i.message.startswith("environment variable") or i.path not in env_paths
    ]
    unique = sorted(set(map(_redact(secrets), kept)), key=lambda i: (i.line, i.col, i.path))
    return unique


def _redact(secrets: set[str]) -> Callable[[ConfigIssue], ConfigIssue]:
    masks = sorted((s for s in secrets if len(s) >= _MIN_SECRET_LEN), key=len, reverse=True)

    def redact(issue: ConfigIssue) -> ConfigIssue:
        message = issue.message
        for secret in masks:
            message = message.replace(secret, "***")
        if message == issue.message:
            return issue
        return ConfigIssue(issue.file, issue.line, issue.col, issue.path, message)

    return redact


def _issue(
    filename: str, path: Sequence[Hashable], pos: Pos, message: str, data: Any = None
) -> ConfigIssue:
    return ConfigIssue(filename, pos.line, pos.col, dotted(path, data), message)


def dotted(path: Sequence[Hashable], data: Any = None) -> str:
    """numbers.paris.routing.queue; list items as members[1]; a dict key 1 stays .1"""
    text = ""
    node = data
    for part in path:
        if isinstance(node, list) and isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
        node = _child(node, part)
    return text


def _child(node: Any, part: Hashable) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _position(doc: Document, path: KeyPath) -> Pos:
    """The value written at path, else the nearest enclosing mapping that exists."""
    for end in range(len(path), -1, -1):
        marks = doc.marks.get(path[:end])
        if marks is not None:
            return marks.value
    return Pos(1, 1)


# --- pydantic errors -> positions --------------------------------------------------------

_MESSAGES = {
    "dict_type": "expected a mapping of keys",
    "model_type": "expected a mapping of keys",
    "model_attributes_type": "expected a mapping of keys",
    "list_type": "expected a list",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
}


def _from_pydantic(filename: str, doc: Document, err: ErrorDetails) -> ConfigIssue:
    path, rest = _walk(doc.data, err["loc"])
    kind = err["type"]
    marks = doc.marks.get(path)
    message = _message(err)
    # Leftover loc parts name a key the file lacks ('missing') or pydantic's own labels
    # for union members ("literal['all']"), which mean nothing to the operator.
    shown: list[Hashable] = [*path, *rest] if kind == "missing" else list(path)
    if kind == "missing" or kind == "union_tag_not_found":
        # The key is not there to point at: point at the mapping that lacks it.
        if kind == "union_tag_not_found":
            shown.append("action")
        pos = marks.value if marks else _position(doc, path)
    elif kind == "union_tag_invalid" and (*path, "action") in doc.marks:
        shown = [*path, "action"]
        pos = doc.marks[(*path, "action")].value
    elif kind == "extra_forbidden" or rest == ["[key]"]:
        pos = (marks.key or marks.value) if marks else _position(doc, path)
    else:
        pos = marks.value if marks else _position(doc, path)
    return _issue(filename, shown, pos, message, doc.data)


def _union_merged(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """One issue per position: a plain union (e.g. all | [ids]) fails once per member."""
    merged: dict[tuple[int, int, str], ConfigIssue] = {}
    for issue in issues:
        key = (issue.line, issue.col, issue.path)
        if key in merged:
            first = merged[key]
            extra = issue.message.removeprefix("expected ")
            message = f"{first.message} or {extra}"
            merged[key] = ConfigIssue(issue.file, issue.line, issue.col, issue.path, message)
        else:
            merged[key] = issue
    return list(merged.values())


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind == "value_error":
        return str(err.get("ctx", {}).get("error", err["msg"]))
    if kind == "missing":
        return f"missing required key {err['loc'][-1]!r}"
    if kind == "extra_forbidden":
        key = err["loc"][-1]
        close = difflib.get_close_matches(str(key), _known_keys(), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {key!r}{hint}"
    if kind == "union_tag_not_found":
        return "missing 'action' (queue, menu, employee, voicemail, forward, repeat or hangup)"
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag")
        return (
            f"unknown action {tag!r}: expected queue, menu, employee, voicemail, "
            "forward, repeat or hangup"
        )
    if kind == "string_pattern_mismatch" and err["loc"][-1:] == ("extension",):
        return 'an extension is 1 to 4 digits, written as a quoted string like "101"'
    if kind in ("greater_than", "greater_than_equal"):
        ctx = err.get("ctx", {})
        return (
            f"must be greater than {ctx['gt']}" if "gt" in ctx else f"must be at least {ctx['ge']}"
        )
    if kind in ("literal_error", "enum"):
        return err["msg"].replace("Input should be", "expected")
    message = _MESSAGES.get(kind, err["msg"])
    # Never echo the input itself (it may be a secret); only say what YAML made of it.
    if kind == "string_type" and isinstance(err.get("input"), int | float):
        message += " (YAML read a number here: quote it)"
    return message


@functools.cache
def _known_keys() -> list[str]:
    """Every key name the schema knows, for "did you mean" hints on typos."""
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()
    pending: list[type[BaseModel]] = [Config]
    while pending:
        model = pending.pop()
        seen.add(model)
        for name, field in model.model_fields.items():
            names.add(name)
            pending += [m for m in _models_in(field.annotation) if m not in seen]
    return sorted(names)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _walk(data: Any, loc: tuple[int | str, ...]) -> tuple[KeyPath, list[Hashable]]:
    """Follow pydantic's loc through the parsed data, skipping union tags.

    pydantic puts the chosen tag of a discriminated union into loc
    (('after_hours', 'queue', 'queue') for {action: queue, queue: ...}); tags are not
    keys of the file, so they must not appear in the path shown to the operator.
    """
    node = data
    path: list[Hashable] = []
    i = 0
    tag_skipped = False
    while i < len(loc):
        part = loc[i]
        if not tag_skipped and path[-1:] == ["holidays"] and part in ("days", "calendar"):
            tag_skipped = True  # schedules.<id>.holidays: a list of days or a calendar
            i += 1
            continue
        if isinstance(node, dict):
            is_tag = not tag_skipped and (
                node.get("action") == part
                or (path[-1:] == ["hold_music"] and part in ("file", "language"))
            )
            if is_tag:
                tag_skipped = True
                i += 1
                continue
            if part in node:
                node = node[part]
                path.append(part)
                tag_skipped = False
                i += 1
                continue
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
            tag_skipped = False
            i += 1
            continue
        break
    return tuple(path), list(loc[i:])
