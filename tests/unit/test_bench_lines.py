"""The capacity run's lines beyond run.py's 99 (bench/load.py): each line has its own
number and employee, lines 1-99 are run.py's, and an employee's Local channel name maps
back to its line (the observer's only link from the employee leg to the call)."""

from __future__ import annotations

from pathlib import Path

from bench.hybrid_app import line_employee
from bench.load import (
    EMPLOYEE_LEG,
    FLOORS,
    MAX_LINES,
    line_ext,
    line_number,
    lines_config,
    more_lines_dialplan,
)
from bench.run import (
    CONTEXT_DIALPLAN,
    VARIANT_CONTEXTS,
    bench_dialplan,
    employee_ext,
    number,
)


def test_lines_1_to_99_are_run_pys() -> None:
    assert [line_number(n) for n in range(1, 100)] == [number(n) for n in range(1, 100)]
    assert [line_ext(n) for n in range(1, 100)] == [employee_ext(n) for n in range(1, 100)]


def test_every_line_has_its_own_number_and_employee() -> None:
    lines = range(1, MAX_LINES + 1)
    assert len({line_number(n) for n in lines}) == MAX_LINES
    assert len({line_ext(n) for n in lines}) == MAX_LINES
    assert (line_number(100), line_ext(100)) == ("+33185009800", "200")
    assert (line_number(250), line_ext(250)) == ("+33185009750", "350")


def test_an_employee_leg_name_maps_back_to_its_line() -> None:
    for line in (1, 42, 99, 100, 250, MAX_LINES):
        name = f"Local/{line_ext(line)}@numcfg-bench-employees-0000abcd;2"
        match = EMPLOYEE_LEG.match(name)
        assert match is not None
        assert 100 * (int(match.group(1)) - 1) + int(match.group(2)) == line
        assert match.group(3) == "2"


def test_the_config_has_one_number_menu_and_employee_per_line(tmp_path: Path) -> None:
    config = lines_config(150, tmp_path)
    assert len(config["numbers"]) == len(config["ivr_menus"]) == len(config["employees"]) == 150
    assert config["numbers"]["b150"]["number"] == line_number(150)
    assert config["numbers"]["b150"]["routing"]["ivr"] == "m150"
    assert config["ivr_menus"]["m150"]["options"]["1"]["employee"] == "e150"
    assert config["employees"]["e150"]["endpoint"] == "Local/250@numcfg-bench-employees"


def test_the_floor_app_rings_each_lines_own_employee() -> None:
    # bench/hybrid_app.py knows a line only by the number dialled.
    for line in (1, 42, 99, 100, 250, MAX_LINES):
        assert line_employee(line_number(line)) == line_ext(line)


def test_further_blocks_of_lines_reach_every_dialplan_variant() -> None:
    installed = bench_dialplan("")
    extra = more_lines_dialplan(installed, 250)
    for context in (CONTEXT_DIALPLAN, *(VARIANT_CONTEXTS[floor] for floor in FLOORS)):
        section = extra.split(f"[{context}](+)\n", 1)[1].split("\n[", 1)[0]
        # Blocks 1 and 2 (lines 100-199 and 200-250): the next two number prefixes down.
        assert f"exten => _{line_number(100)[:-2]}XX,1," in section
        assert f"exten => _{line_number(200)[:-2]}XX,1," in section
        assert f"exten => _{line_number(300)[:-2]}XX,1," not in section
    dialplan = extra.split(f"[{CONTEXT_DIALPLAN}](+)\n", 1)[1]
    assert "BENCH_EMPLOYEE=2${EXTEN:-2}" in dialplan
    assert "BENCH_EMPLOYEE=3${EXTEN:-2}" in dialplan


def test_no_further_blocks_within_run_pys_99_lines() -> None:
    assert more_lines_dialplan(bench_dialplan(""), 99) == ""
