"""What differs between PostgreSQL and SQLite, behind one object per database.

The rest of igny8ctl asks ``dialect_of(bind)`` (or ``Igny8Schema.dialect``) and never
compares dialect names itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from igny8ctl.dialects.base import Dialect, quote_identifier

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


def dialect_named(name: str) -> Dialect:
    if name == "postgresql":
        from igny8ctl.dialects.postgresql import PostgreSQL

        return PostgreSQL()
    from igny8ctl.dialects.sqlite import SQLite

    return SQLite()


def dialect_of(bind: Connection | Engine) -> Dialect:
    return dialect_named(bind.dialect.name)


__all__ = ["Dialect", "dialect_named", "dialect_of", "quote_identifier"]
