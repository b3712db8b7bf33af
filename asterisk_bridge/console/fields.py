"""The number-settings screen as data: which config keys it shows, in which section, and
how a submitted form value becomes a YAML value.

Every field is named by its key path under `numbers.<id>` (SPEC section 11:
`name="routing.greeting"`), so a page can be filled by script and an error reported by
`numcfg check` at `numbers.paris.routing.queue` lands at the field `routing.queue`.
Nothing here validates: the config's own schema and checks do, on the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .yamledit import DELETE

ACTION_KINDS: Final = ("queue", "menu", "employee", "voicemail", "forward", "hangup")
# The keys an action of each kind carries besides `action` (config/schema.py's union).
ACTION_KEYS: Final = {
    "queue": ("queue",),
    "menu": ("menu",),
    "employee": ("employee",),
    "voicemail": ("employee",),
    "forward": ("to",),
    "hangup": ("message",),
}
HOLD_LANGUAGES: Final = ("en", "de", "ru", "uk", "es", "pt", "fr")
DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LIST_SPLIT: Final = re.compile(r"[,\s]+")


@dataclass(frozen=True)
class Field:
    path: str  # under numbers.<id> (or the root, for schedules)
    kind: str  # text | ref | number | bool | choice | list | action
    choices: tuple[str, ...] = ()
    ref: str | None = None  # config section whose ids the field names (a datalist)
    nullable: bool = True  # "" means null; otherwise "" removes the key (the default)

    @property
    def id(self) -> str:
        return "f-" + self.path.replace(".", "-")


SECTIONS: Final[tuple[tuple[str, tuple[Field, ...]], ...]] = (
    (
        "routing",
        (
            Field("name", "text"),
            Field("routing.greeting", "text", ref="sounds"),
            Field("routing.extension_dialing.enabled", "bool"),
            Field("routing.extension_dialing.ring_time", "number", nullable=False),
            Field(
                "routing.extension_dialing.no_answer",
                "choice",
                ("continue", "forward_to_mobile", "voicemail"),
            ),
            Field("routing.ivr", "ref", ref="ivr_menus"),
            Field("routing.crm_responsible.enabled", "bool"),
            Field(
                "routing.crm_responsible.no_answer",
                "choice",
                ("queue", "forward_to_mobile", "voicemail"),
            ),
            Field("routing.queue", "ref", ref="queues"),
            Field("routing.skip_absent_employees", "bool"),
            Field("routing.sip_to_header", "bool"),
            Field("connection", "choice", ("rented", "sip_pbx", "sip_cloud")),
        ),
    ),
    (
        "crm",
        (
            Field("crm.create_lead", "choice", ("incoming", "outgoing", "both", "never")),
            Field("crm.lead_source", "text", nullable=False),
            Field("crm.exceptions", "list"),
            Field("crm.reassign_lead_on_transfer", "bool"),
        ),
    ),
    (
        "recording",
        (
            Field("recording.record_all", "bool"),
            Field("recording.warning", "bool"),
            Field("recording.transcribe", "bool"),
            Field("rating", "bool"),
        ),
    ),
    (
        "hours",
        (
            Field("working_hours.schedule", "ref", ref="schedules"),
            Field("working_hours.after_hours", "action"),
        ),
    ),
    (
        "other",
        (
            Field("outbound.selectable", "bool"),
            Field("outbound.prefix", "text"),
            Field("outbound.allowed_employees", "list"),
            Field("callback.attempts", "number"),
            Field("callback.delay", "number"),
            Field("backup_number", "text"),
            Field("forward_caller_id", "text"),
            Field("language", "choice", ("", *HOLD_LANGUAGES)),
        ),
    ),
    ("hold_music", (Field("hold_music.language", "choice", HOLD_LANGUAGES),)),
)

ALL_FIELDS: Final = tuple(field for _section, fields in SECTIONS for field in fields)


def value_at(data: Any, path: str) -> Any:
    node = data
    for key in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def shown_value(field: Field, current: Mapping[str, Any]) -> Any:
    """The value a field shows for the number's current settings (model_dump, json)."""
    value = value_at(current, field.path)
    if field.kind == "list":
        return ", ".join(value) if isinstance(value, list) else (value or "")
    if field.kind in ("text", "ref", "number", "choice"):
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return "" if value is None else str(value)
    return value


def parse(field: Field, form: Mapping[str, str]) -> Any:
    """The YAML value of `field` from the form's values (DELETE: back to the default)."""
    if field.kind == "bool":
        return form.get(field.path) == "true"
    if field.kind == "action":
        return _parse_action(field.path, form)
    raw = (form.get(field.path) or "").strip()
    if field.kind == "list":
        items = [item for item in _LIST_SPLIT.split(raw) if item]
        if field.path == "outbound.allowed_employees" and items in ([], ["all"]):
            return "all"
        return items
    if raw == "":
        return None if field.nullable else DELETE
    if field.kind == "number":
        return _number(raw)
    return raw


def _parse_action(path: str, form: Mapping[str, str]) -> Any:
    kind = (form.get(f"{path}.action") or "").strip()
    action: dict[str, Any] = {"action": kind}
    for key in ACTION_KEYS.get(kind, ()):
        value = (form.get(f"{path}.{key}") or "").strip()
        if value:
            action[key] = value
    return action


def _number(text: str) -> Any:
    # Written as a number when it is one; otherwise kept as text for the schema to
    # refuse at its field ("ring_time: abc": input should be a valid number).
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    return text


def same(field: Field, new: Any, current: Mapping[str, Any]) -> bool:
    """True when saving `new` would change nothing (so the file is left as written)."""
    old = value_at(current, field.path)
    if new is DELETE:
        return False
    if field.kind == "action" and isinstance(old, Mapping):
        return {k: v for k, v in old.items() if v is not None} == new
    return bool(old == new)
