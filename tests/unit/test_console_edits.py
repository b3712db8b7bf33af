"""Console saves: a form becomes edits of only the keys that changed; the YAML keeps its
comments and layout; issues of `numcfg check` land at the form field of their key path."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from asterisk_bridge.config import ConfigHolder
from asterisk_bridge.console.pages_numbers import FORM_NAMES
from asterisk_bridge.console.save import number_edits, number_field_of, save
from asterisk_bridge.console.yamledit import DELETE, apply_edits, write_atomically
from asterisk_bridge.store import open_store

REPO = Path(__file__).resolve().parents[2]
FULL = (REPO / "examples" / "full.yaml").read_text()
ENV = {"NUMCFG_ARI_PASSWORD": "p", "NUMCFG_API_TOKEN": "t"}
QUEUE_SALES = {"action": "queue", "queue": "sales"}


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    a, b = before.splitlines(), after.splitlines()
    assert len(a) == len(b), "lines were added or removed"
    return [(x, y) for x, y in zip(a, b, strict=True) if x != y]


def test_an_edit_changes_its_line_only_and_keeps_the_comment_beside_it() -> None:
    after = apply_edits(
        FULL,
        [
            (("numbers", "paris", "routing", "queue"), "support"),
            (("numbers", "paris", "working_hours", "schedule"), None),
            (("numbers", "paris", "crm", "exceptions"), ["+33600000009"]),
        ],
    )
    assert changed_lines(FULL, after) == [
        ("      queue: sales", "      queue: support"),
        (
            "      schedule: office            # null: always open",
            "      schedule: null              # null: always open",
        ),
        ('      exceptions: ["+33600000000"]', '      exceptions: ["+33600000009"]'),
    ]


def test_no_edit_gives_the_file_back_byte_for_byte() -> None:
    assert apply_edits(FULL, []) == FULL


def test_delete_removes_the_key_so_the_default_applies() -> None:
    after = apply_edits(FULL, [(("numbers", "paris", "outbound"), DELETE)])
    assert "prefix:" not in after and after.count("\n") == FULL.count("\n") - 4


def test_only_the_fields_that_differ_from_the_running_config_become_edits() -> None:
    holder = ConfigHolder(REPO / "examples" / "full.yaml", env=ENV)
    current = holder.current.numbers["paris"].model_dump(mode="json")
    form = {
        "routing.greeting": "sound:numcfg/en/welcome",  # as it is
        "routing.queue": "support",
        "routing.extension_dialing.enabled": "true",  # as it is
        "routing.extension_dialing.ring_time": "30",
        "rating": "false",
        "working_hours.after_hours.action": "queue",
        "working_hours.after_hours.queue": "sales",
        "working_hours.after_hours.employee": "anna",  # not a key of a queue action
        "callback.attempts": "",
        "callback.delay": "",
    }
    assert number_edits("paris", form, current) == [
        (("numbers", "paris", "routing", "extension_dialing", "ring_time"), 30),
        (("numbers", "paris", "routing", "queue"), "support"),
        (("numbers", "paris", "rating"), False),
        (
            ("numbers", "paris", "working_hours", "after_hours"),
            {"action": "queue", "queue": "sales"},
        ),
        (("numbers", "paris", "callback"), None),  # both empty: no callbacks
    ]


@pytest.mark.parametrize(
    ("issue_path", "field"),
    [
        ("numbers.paris.routing.queue", "routing.queue"),
        ("numbers.paris.working_hours.after_hours.queue", "working_hours.after_hours.queue"),
        ("numbers.paris.working_hours.after_hours", "working_hours.after_hours"),
        ("numbers.paris.crm.exceptions.0", "crm.exceptions"),
        ("numbers.lyon.routing.queue", ""),  # another number's: the top of the page
        ("queues.sales.members", ""),
    ],
)
def test_an_issue_lands_at_the_field_of_its_key_path(issue_path: str, field: str) -> None:
    assert number_field_of("paris", FORM_NAMES)(issue_path) == field


def test_a_refused_save_leaves_the_file_and_the_running_config_alone(tmp_path: Path) -> None:
    path = tmp_path / "numcfg.yaml"
    path.write_text(FULL.replace("sqlite:///var/lib/numcfg/numcfg.sqlite3", "sqlite:///x.db"))
    holder = ConfigHolder(path, env=ENV)
    store = open_store(f"sqlite:///{tmp_path / 'numcfg.sqlite3'}")
    before = path.read_bytes()
    try:
        result = asyncio.run(
            save(
                holder,
                store,
                [(("numbers", "paris", "routing", "queue"), "sales2")],
                base_digest=None,
                field_of=number_field_of("paris", FORM_NAMES),
            )
        )
    finally:
        store.close()
    assert not result.saved
    assert result.errors == {"routing.queue": ["unknown queue 'sales2'"]}
    assert path.read_bytes() == before and holder.generation == 0


def test_write_atomically_keeps_the_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "numcfg.yaml"
    path.write_text("version: 1\n")
    path.chmod(0o640)
    write_atomically(path, "version: 1\n# saved\n")
    assert path.read_text() == "version: 1\n# saved\n"
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["numcfg.yaml"]


def test_on_a_shared_store_a_save_publishes_a_version_and_leaves_the_file(
    tmp_path: Path, pg_db_url: str
) -> None:
    path = tmp_path / "numcfg.yaml"
    path.write_text(FULL.replace("sqlite:///var/lib/numcfg/numcfg.sqlite3", pg_db_url))
    before = path.read_bytes()
    holder = ConfigHolder(path, env=ENV)
    store = open_store(pg_db_url)
    try:
        store.config_versions.publish(path.read_text())  # what `numcfg apply` did
        result = asyncio.run(
            save(
                holder,
                store,
                [(("numbers", "paris", "routing", "greeting"), "sound:numcfg/fr/welcome")],
                base_digest=None,
                field_of=number_field_of("paris", FORM_NAMES),
            )
        )
        latest = store.config_versions.latest()
    finally:
        store.close()
    assert result.saved and not result.errors
    assert latest is not None and latest.version == 2
    assert "greeting: sound:numcfg/fr/welcome" in latest.text
    assert "# null: always open" in latest.text  # published with the file's comments
    assert path.read_bytes() == before
    assert holder.current.numbers["paris"].routing.greeting == "sound:numcfg/fr/welcome"
