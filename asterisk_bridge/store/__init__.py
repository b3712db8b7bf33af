"""Persistence: SQLAlchemy Core tables on SQLite (one node) or PostgreSQL (shared by nodes)."""

from asterisk_bridge.store.store import CONFIG_CHANNEL, NotFoundError, Store, open_store

__all__ = ["CONFIG_CHANNEL", "NotFoundError", "Store", "open_store"]
