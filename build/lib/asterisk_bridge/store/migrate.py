"""Schema migrations (Alembic): every store is brought to the schema this release uses.

- A new database gets the whole schema from the migrations, in order.
- A store made before migrations existed (tables, no alembic_version) is stamped with
  the revision whose schema it has (0001, or 0002 once it has open_calls), then upgraded.
- Any other store is upgraded from the revision it records.
Runs under the schema lock (engine.create_schema), so nodes starting together never
migrate twice; `numcfg db upgrade` runs the same thing by hand.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from asterisk_bridge.store.tables import metadata

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Alembic says INFO for every step of every start; numcfg logs the outcome itself.
logging.getLogger("alembic").setLevel(logging.WARNING)
FIRST_RELEASE = "0001"


def _alembic(connection: Connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head() -> str:
    """The revision this release's code expects."""
    return str(_script().get_current_head())


def current(connection: Connection) -> str | None:
    """The revision a store is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection) -> tuple[str | None, str]:
    """Bring the store to head; (revision before, revision after)."""
    before = current(connection)
    if before == head():
        return before, before  # the usual start: nothing to do, no migration machinery
    if before is None and _unversioned_revision(connection) is None:
        # An empty database: the declared tables, stamped as head (the test suite proves
        # the migrations build exactly these, so both roads lead to the same schema).
        metadata.create_all(connection)
        MigrationContext.configure(connection).stamp(_script(), "head")
        return before, head()
    config = _alembic(connection)
    if before is None:
        command.stamp(config, _unversioned_revision(connection) or FIRST_RELEASE)
    command.upgrade(config, "head")
    return before, head()


def _unversioned_revision(connection: Connection) -> str | None:
    """The schema a store without alembic_version has; None for an empty database."""
    inspector = sa.inspect(connection)
    if not inspector.has_table("calls"):
        return None
    if inspector.has_table("open_calls"):
        return "0002"  # made by create_all between the first release and migrations
    return FIRST_RELEASE
