"""`queues.<id>.virtual_hold` (SPEC section 9) in the config: defaults, one keypad key,
a positive wait, and errors at the line of the mistake."""

from __future__ import annotations

import pytest

from asterisk_bridge.config import ConfigError, load_config_text

BASE = """\
version: 1
asterisk: {ari_url: "http://127.0.0.1:8088/ari", username: numcfg, password: secret}
employees:
  anna: {name: Anna, extension: "101", endpoint: PJSIP/101}
queues:
  sales:
    members: [anna]
"""  # the virtual_hold line is line 8


def load(hold: str):  # type: ignore[no-untyped-def]
    return load_config_text(BASE + f"    virtual_hold: {hold}\n", env={}, base_dir="/srv")


def test_a_queue_has_no_virtual_hold_unless_asked() -> None:
    config = load_config_text(BASE, env={}, base_dir="/srv")
    assert config.queues["sales"].virtual_hold is None


@pytest.mark.parametrize(
    ("hold", "key", "after"),
    [
        ('{key: "1", after: 30}', "1", 30.0),
        ("{}", "1", 30.0),  # SPEC's example values are the defaults
        ('{key: "#", after: 5}', "#", 5.0),
        ("{key: 0}", "0", 30.0),  # an unquoted digit is that key
    ],
)
def test_virtual_hold_settings(hold: str, key: str, after: float) -> None:
    settings = load(hold).queues["sales"].virtual_hold
    assert settings is not None and (settings.key, settings.after) == (key, after)


@pytest.mark.parametrize(
    ("hold", "expected"),
    [
        ('{key: "12"}', "numcfg.yaml:8:25: queues.sales.virtual_hold.key: '12': expected one key"),
        ('{key: "a"}', "numcfg.yaml:8:25: queues.sales.virtual_hold.key: 'a' may use only"),
        ('{key: ""}', "numcfg.yaml:8:25: queues.sales.virtual_hold.key:"),
        ("{after: 0}", "numcfg.yaml:8:27: queues.sales.virtual_hold.after:"),
        ("{after: true}", "numcfg.yaml:8:27: queues.sales.virtual_hold.after: expected a number"),
        ("{ket: 1}", "numcfg.yaml:8:20: queues.sales.virtual_hold.ket:"),
    ],
)
def test_bad_virtual_hold_is_refused_at_its_line(hold: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(hold)
    issues = [str(issue) for issue in caught.value.issues]
    assert any(issue.startswith(expected) for issue in issues), issues
