"""`numcfg crm import FILE.csv`: good rows in, bad rows reported with their line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from asterisk_bridge.cli import main
from asterisk_bridge.store import open_store
from tests.unit.crm_fakes import ENV, write_config


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    return write_config(tmp_path)


def contacts(config_path: Path) -> list[dict]:
    store = open_store(f"sqlite:///{config_path.parent / 'numcfg.sqlite3'}")
    try:
        return [contact.to_json() for contact in store.crm.contacts()]
    finally:
        store.close()


def test_import_loads_good_rows_and_reports_bad_ones_by_line(config_path, tmp_path, capsys):
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text(
        "\ufeffName,Phone,Responsible\n"  # a spreadsheet's BOM and capitalised header
        "Jean Dupont,+33612345678,anna\n"
        "Marie Curie,01 85 00 00 99,\n"  # national, read as French like the numbers
        ",+33612345600,anna\n"
        "Bad Phone,12,anna\n"
        "Ghost,+33612345601,zoe\n"
        "Twice,+33612345678,boris\n"
        '"Multi, Line Inc",+33612345602,boris\n'
    )
    code = main(["crm", "import", str(csv_file), "-c", str(config_path)])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"{csv_file}: 3 row(s) imported, 4 refused" in out
    assert f"{csv_file}:4: name" in err
    assert f"{csv_file}:5: phone" in err
    assert f"{csv_file}:6: responsible: no employee 'zoe'" in err
    assert f"{csv_file}:7: phone +33612345678 already on line 2" in err
    rows = {c["phone"]: (c["name"], c["responsible"]) for c in contacts(config_path)}
    assert rows == {
        "+33612345678": ("Jean Dupont", "anna"),
        "+33185000099": ("Marie Curie", None),
        "+33612345602": ("Multi, Line Inc", "boris"),
    }


def test_reimporting_updates_rather_than_duplicates(config_path, tmp_path, capsys):
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("name,phone,responsible\nJean,+33612345678,anna\n")
    assert main(["crm", "import", str(csv_file), "-c", str(config_path)]) == 0
    csv_file.write_text("name,phone,responsible\nJean Dupont,+33612345678,boris\n")
    assert main(["crm", "import", str(csv_file), "-c", str(config_path)]) == 0
    assert [(c["name"], c["responsible"]) for c in contacts(config_path)] == [
        ("Jean Dupont", "boris")
    ]
    assert "1 row(s) imported, 0 refused" in capsys.readouterr().out


def test_a_file_without_the_columns_is_refused_whole(config_path, tmp_path, capsys):
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("full name;tel\nJean;+33612345678\n")
    assert main(["crm", "import", str(csv_file), "-c", str(config_path)]) == 2
    assert "missing name, phone" in capsys.readouterr().err
    assert contacts(config_path) == []
