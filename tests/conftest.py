"""Shared fixtures: a throwaway PostgreSQL on loopback for store tests (tests/pgserver.py)."""

from tests.fixtures_pg import pg_db_url, pg_url  # noqa: F401  (pytest fixtures)
