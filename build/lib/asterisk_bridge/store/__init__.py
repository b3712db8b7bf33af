"""Persistence: SQLAlchemy Core tables on SQLite (one node) or PostgreSQL (shared by nodes).

`open_store(url)` returns the Store; its attributes are the repositories (store.py), each in
its own module, and they return the typed rows of rows.py.
"""

from asterisk_bridge.store.config_versions import CONFIG_CHANNEL, ConfigListener, ListenLost
from asterisk_bridge.store.engine import STORE_FAULTS, NotFoundError
from asterisk_bridge.store.rows import (
    CallbackJob,
    CallDetails,
    ConfigVersion,
    Contact,
    Lead,
    NumberState,
    PendingCrmOp,
    TranscriptionJob,
)
from asterisk_bridge.store.spool import Spool
from asterisk_bridge.store.store import Store, open_store

__all__ = [
    "CONFIG_CHANNEL",
    "STORE_FAULTS",
    "CallDetails",
    "CallbackJob",
    "ConfigListener",
    "ConfigVersion",
    "Contact",
    "Lead",
    "ListenLost",
    "NotFoundError",
    "NumberState",
    "PendingCrmOp",
    "Spool",
    "Store",
    "TranscriptionJob",
    "open_store",
]
