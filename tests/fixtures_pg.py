"""pytest fixtures for tests that need PostgreSQL.

`pg_url`: one throwaway server per test session (see tests/pgserver.py), or the server named
by $NUMCFG_TEST_PG_URL when set (CI with a PostgreSQL service); skips the test when neither
is available. `pg_db_url`: a fresh, empty database on that server for one test, dropped
afterwards. Creating a database costs a few hundred milliseconds, so suites with many tests
may instead hold one `fresh_database` per module and empty its tables between tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import make_url

from tests.pgserver import PostgresUnavailable, find_bindir, postgres_server

ENV_URL = "NUMCFG_TEST_PG_URL"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    if url := os.environ.get(ENV_URL):
        yield url
        return
    try:
        find_bindir()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL not available: {exc}")
    with postgres_server() as url:
        yield url


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """Create an empty database on the server of `server_url`, yield its URL, drop it."""
    name = f"t_{uuid.uuid4().hex}"
    admin = make_url(server_url).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)
    # CREATE/DROP DATABASE cannot run inside a transaction block.
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            # FORCE: a store the test forgot to close must not keep the database alive.
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_db_url(pg_url: str) -> Iterator[str]:
    with fresh_database(pg_url) as url:
        yield url
