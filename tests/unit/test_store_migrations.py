"""Store migrations (issue 14): every store reaches this release's schema with its rows,
on SQLite and PostgreSQL; the migrations build exactly the schema the code declares."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from asterisk_bridge.cli import main
from asterisk_bridge.policy.types import Workday
from asterisk_bridge.store import migrate, open_store
from asterisk_bridge.store.tables import metadata
from tests.fixtures_pg import fresh_database


def engine_for(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sa.create_engine(parsed)


@pytest.fixture(params=["sqlite", "pg"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'numcfg.sqlite3'}"
        return
    with fresh_database(request.getfixturevalue("pg_url")) as url:
        yield url


def first_release_store(url: str) -> None:
    """A store as numcfg's first release left it: its tables (revision 0001) and rows,
    no alembic_version (that release had no migrations)."""
    engine = engine_for(url)
    with engine.begin() as conn:
        command.upgrade(migrate._alembic(conn), "0001")
        conn.exec_driver_sql("DROP TABLE alembic_version")
        conn.execute(
            sa.text("INSERT INTO workdays (employee, state, changed_at) VALUES (:e, :s, :t)"),
            {"e": "anna", "s": "working", "t": datetime(2026, 11, 27, 8, tzinfo=UTC)},
        )
    engine.dispose()


def test_the_migrations_build_exactly_the_declared_schema(empty_url: str) -> None:
    engine = engine_for(empty_url)
    with engine.begin() as conn:
        command.upgrade(migrate._alembic(conn), "head")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []  # a table change without its migration fails here


def test_a_new_store_is_stamped_at_head(empty_url: str) -> None:
    store = open_store(empty_url)
    assert store.schema == (None, migrate.head())
    store.close()
    again = open_store(empty_url)
    assert again.schema == (migrate.head(), migrate.head())
    again.close()


def test_a_first_release_store_is_upgraded_with_its_rows(empty_url: str) -> None:
    first_release_store(empty_url)
    store = open_store(empty_url)
    try:
        assert store.schema == (None, migrate.head())
        assert store.people.workday("anna") is Workday.WORKING
        store.calls.close_interrupted(node="n", now=datetime.now(UTC))  # open_calls exists
    finally:
        store.close()
    again = open_store(empty_url)
    assert again.schema == (migrate.head(), migrate.head())  # nothing left to do
    again.close()


def test_db_upgrade_says_what_it_did(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store_file = tmp_path / "numcfg.sqlite3"
    first_release_store(f"sqlite:///{store_file}")
    config = tmp_path / "numcfg.yaml"
    config.write_text(
        "version: 1\n"
        "asterisk: {ari_url: http://127.0.0.1:8088/ari, username: n, password: p}\n"
        f"store: sqlite:///{store_file}\n"
        'numbers: {paris: {number: "+33185000000"}}\n'
    )
    assert main(["db", "upgrade", "-c", str(config)]) == 0
    assert capsys.readouterr().out.strip() == f"store at schema {migrate.head()} (was unversioned)"
