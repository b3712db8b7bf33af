"""Alembic's entry point, driven by store/migrate.py on a connection it already holds
(under the schema lock), never from the alembic command line."""

from alembic import context

from asterisk_bridge.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
