"""Saving a console form: edits -> YAML text -> `numcfg check`'s validation -> file or store.

Nothing is written unless the whole new config validates; then the file is replaced
atomically (or, when the running config comes from a shared store, a new version is
published) and the service reloads, so the next call uses it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError
from ..config.holder import ConfigHolder
from ..store import Store
from .fields import ALL_FIELDS, Field, parse, same
from .yamledit import DELETE, Edit, EditError, apply_edits, write_atomically

# One save at a time per process: two operators saving at once must not interleave their
# read-modify-write of the same file (the digest check below catches other writers).
_SAVE_LOCK = asyncio.Lock()


@dataclass
class SaveResult:
    saved: bool
    # Errors by form field name ("routing.queue"); "" holds those of no field on the page.
    errors: dict[str, list[str]] = field(default_factory=dict)
    conflict: bool = False  # the config changed since the page was shown


@dataclass(frozen=True)
class Source:
    """Where the config text lives: the file, or the shared store's newest version."""

    text: str
    published: bool  # True: save publishes to the store

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def read_source(holder: ConfigHolder, store: Store) -> Source:
    if store.shared:
        latest = store.config_versions.latest()
        if latest is not None:
            return Source(latest.text, published=True)
    return Source(holder.path.read_text(encoding="utf-8"), published=False)


def number_edits(number_id: str, form: Mapping[str, str], current: Mapping[str, Any]) -> list[Edit]:
    """Edits for the fields of a number's page whose submitted value differs from `current`
    (the number's settings as model_dump'ed), so untouched keys stay as written."""
    base = ("numbers", number_id)
    edits: list[Edit] = []
    values = {f.path: parse(f, form) for f in ALL_FIELDS if _submitted(f, form)}
    for fld in ALL_FIELDS:
        if fld.path not in values:
            continue
        value = values[fld.path]
        if fld.path == "hold_music.language":
            if value and value != (current.get("hold_music") or {}).get("language"):
                edits.append(((*base, "hold_music"), {"language": value}))
            continue
        if fld.path.startswith("callback."):
            continue  # below: the two make one optional mapping
        if not same(fld, value, current):
            edits.append(((*base, *fld.path.split(".")), value))
    edits += _callback_edits(base, values, current)
    return edits


def _submitted(fld: Field, form: Mapping[str, str]) -> bool:
    key = f"{fld.path}.action" if fld.kind == "action" else fld.path
    return key in form


def _callback_edits(
    base: tuple[str, ...], values: Mapping[str, Any], current: Mapping[str, Any]
) -> list[Edit]:
    if "callback.attempts" not in values and "callback.delay" not in values:
        return []
    attempts, delay = values.get("callback.attempts"), values.get("callback.delay")
    old = current.get("callback")
    if attempts is None and delay is None:
        return [] if old is None else [((*base, "callback"), None)]
    new = {"attempts": attempts, "delay": delay}
    if old is not None and all(new[k] is None or new[k] == old.get(k) for k in new):
        return []
    return [((*base, "callback", k), DELETE if v is None else v) for k, v in new.items()]


async def save(
    holder: ConfigHolder,
    store: Store,
    edits: Iterable[Edit],
    *,
    base_digest: str | None,
    field_of: Any,
) -> SaveResult:
    """Apply `edits` if the result validates. `field_of(issue_path)` names the form field
    an issue belongs to ("" when none)."""
    edits = list(edits)
    async with _SAVE_LOCK:
        source = await asyncio.to_thread(read_source, holder, store)
        if base_digest is not None and base_digest != source.digest:
            return SaveResult(saved=False, conflict=True)
        if not edits:
            return SaveResult(saved=True)
        try:
            text = apply_edits(source.text, edits)
        except EditError as exc:
            return SaveResult(saved=False, errors={"": [str(exc)]})
        origin = "store" if source.published else holder.path.name
        try:
            await asyncio.to_thread(holder.check_text, text, origin)
        except ConfigError as exc:
            errors: dict[str, list[str]] = {}
            for issue in exc.issues:
                name = field_of(issue.path)
                message = issue.message if name else str(issue)
                errors.setdefault(name, []).append(message)
            return SaveResult(saved=False, errors=errors)
        if source.published:
            await asyncio.to_thread(store.config_versions.publish, text)
            # The store watcher reloads on NOTIFY; this node need not wait for it.
            reloaded = holder.reload_text(text, "store:console")
        else:
            await asyncio.to_thread(write_atomically, holder.path, text)
            reloaded = await holder.reload_async()
        if not reloaded:
            issues = [str(issue) for issue in holder.last_error or []]
            return SaveResult(saved=True, errors={"": issues or ["the reload failed"]})
        return SaveResult(saved=True)


def number_field_of(number_id: str, names: Iterable[str]) -> Any:
    """An issue path -> the number page's field for it: the field itself, the field of
    an action it is inside of, or "" (shown at the top of the page)."""
    prefix = f"numbers.{number_id}."
    known = sorted(names, key=len, reverse=True)

    def field_of(path: str) -> str:
        if not path.startswith(prefix):
            return ""
        rel = path[len(prefix) :]
        for name in known:
            if rel == name or rel.startswith(name + "."):
                return name
        for name in known:
            if name.startswith(rel + "."):
                return name
        return ""

    return field_of


def root_field_of(names: Iterable[str]) -> Any:
    known = sorted(names, key=len, reverse=True)

    def field_of(path: str) -> str:
        for name in known:
            if path == name or path.startswith(name + "."):
                return name
        return ""

    return field_of
