"""Console users: name, password hash, role and (for employees) whose calls they see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import sqlalchemy as sa

from asterisk_bridge.store.engine import Database, utc_now
from asterisk_bridge.store.tables import console_users

# SPEC section 11: admin edits settings; supervisor sees every call and the board and sets
# workdays; employee sees her own calls and sets her own workday.
ROLES: Final = ("admin", "supervisor", "employee")


@dataclass(frozen=True)
class ConsoleUser:
    name: str
    password_hash: str
    role: str
    employee: str | None
    created_at: datetime


class UserExists(ValueError):
    """`add` of a name that is taken (the store's primary key said so)."""


class ConsoleUsers:
    def __init__(self, *, db: Database) -> None:
        self._db = db

    def add(self, name: str, *, password_hash: str, role: str, employee: str | None) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        stmt = sa.insert(console_users).values(
            name=name,
            password_hash=password_hash,
            role=role,
            employee=employee,
            created_at=utc_now(),
        )
        try:
            with self._db.write() as conn:
                conn.execute(stmt)
        except sa.exc.IntegrityError as exc:
            raise UserExists(f"a console user named {name!r} exists") from exc

    def set_password_hash(self, name: str, password_hash: str) -> bool:
        """Replace the hash (a rehash at login, or a new password); False: no such user."""
        stmt = (
            sa.update(console_users)
            .where(console_users.c.name == name)
            .values(password_hash=password_hash)
        )
        with self._db.write() as conn:
            return conn.execute(stmt).rowcount == 1

    def get(self, name: str) -> ConsoleUser | None:
        query = sa.select(console_users).where(console_users.c.name == name)
        with self._db.read() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else ConsoleUser(**row)

    def all(self) -> list[ConsoleUser]:
        with self._db.read() as conn:
            rows = conn.execute(sa.select(console_users).order_by(console_users.c.name))
            return [ConsoleUser(**row) for row in rows.mappings()]

    def remove(self, name: str) -> bool:
        with self._db.write() as conn:
            stmt = sa.delete(console_users).where(console_users.c.name == name)
            return conn.execute(stmt).rowcount == 1
