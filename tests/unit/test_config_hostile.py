"""Hostile configs (issue 17): an alias bomb or a huge file is refused at once, as an error
at its line, and a reload never stalls the event loop that carries the calls."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from asterisk_bridge.config import ConfigError, ConfigHolder, load_config_text, yamlmarks

ENV = {"NUMCFG_ARI_PASSWORD": "ari-pass-123"}

GOOD = """\
version: 1
asterisk:
  ari_url: http://127.0.0.1:8088/ari
  username: numcfg
  password: ${NUMCFG_ARI_PASSWORD}
numbers:
  paris:
    number: "+33185000000"
"""

# Seven levels of nine aliases: 9**7 = 4.8 million values from about 400 bytes.
BOMB = (
    GOOD
    + "x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 8))
)


def test_an_alias_bomb_is_refused_quickly_at_its_line() -> None:
    assert len(BOMB) < 600
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_config_text(BOMB, filename="numcfg.yaml", env=ENV)
    assert time.monotonic() - started < 2.0
    (issue,) = caught.value.issues
    text = str(issue)
    assert text.startswith("numcfg.yaml:")
    assert "expands to more than" in text
    line = int(text.split(":")[1])
    assert line > GOOD.count("\n")  # inside the aliases, not at the top of the file


def test_a_file_too_big_to_be_a_config_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlmarks, "MAX_CONFIG_CHARS", 1000)
    with pytest.raises(ConfigError, match="a config is at most 1000"):
        load_config_text(GOOD + "#" * 2000 + "\n", filename="numcfg.yaml", env=ENV)


def test_legitimate_aliases_and_merges_still_load() -> None:
    text = GOOD.replace(
        "numbers:\n",
        "employees:\n  anna: {name: Anna, extension: '101', endpoint: PJSIP/101}\n"
        "queues:\n  sales: &q {members: [anna], ring_time: 5}\n  support: *q\nnumbers:\n",
    )
    config = load_config_text(text, filename="numcfg.yaml", env=ENV)
    assert config.queues["support"].ring_time == 5


async def test_a_hostile_reload_keeps_the_config_and_never_stalls_the_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "numcfg.yaml"
    path.write_text(GOOD)
    holder = ConfigHolder(path, env=ENV)
    before = holder.current
    path.write_text(BOMB)
    longest = 0.0
    reload = asyncio.create_task(holder.reload_async())
    while not reload.done():
        tick = time.monotonic()
        await asyncio.sleep(0.005)
        longest = max(longest, time.monotonic() - tick)
    assert await reload is False
    assert holder.current is before
    assert holder.last_error and "expands to more than" in str(holder.last_error[0])
    assert longest < 0.5  # the parse ran in a thread: the loop kept turning (was 183 s)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        # Valid UTF-8 that YAML refuses: a binary file (PyYAML raised ReaderError).
        (GOOD + "blob: \x00\x01\x02\x89PNG\n", (9, 7), "U+0000 is not allowed in YAML"),
        # Nested past Python's recursion limit (PyYAML raised RecursionError).
        (GOOD + "deep: " + "[" * 20000 + "]" * 20000 + "\n", None, "nested deeper"),
        (GOOD + "".join(" " * i + f"k{i}:\n" for i in range(1500)), None, "nested deeper"),
    ],
    ids=["binary", "deep-flow", "deep-block"],
)
def test_binary_and_deeply_nested_files_are_config_errors_at_their_line(
    text: str, where: tuple[int, int] | None, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, filename="numcfg.yaml", env=ENV)
    (issue,) = caught.value.issues
    assert message in str(issue)
    if where is not None:
        assert (issue.line, issue.col) == where
    else:
        assert issue.line > GOOD.count("\n")  # past the good part, where the nesting is


async def test_a_binary_reload_keeps_the_config_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "numcfg.yaml"
    path.write_text(GOOD)
    holder = ConfigHolder(path, env=ENV)
    before = holder.current
    path.write_bytes(GOOD.encode() + b"\x00" * 64)
    assert await holder.reload_async() is False
    assert holder.current is before
    assert holder.last_error and "not allowed in YAML" in str(holder.last_error[0])
