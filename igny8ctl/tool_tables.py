"""The tables igny8ctl keeps in igny8's database (journal, runs, check history): one rule each
for naming a run and for creating the tables on first use."""

from __future__ import annotations

import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.dialects import dialect_of


def new_run_id(moment: datetime) -> str:
    """Sortable by time, unique across hosts: ``20261203T094348-151e1e``."""
    return moment.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def ensure_tables(connection: Connection, *tables: sa.Table) -> None:
    """Create ``tables`` if missing, inside the caller's transaction.

    Only a first use takes the creation lock (named after the first table), so runs that find
    the tables do not wait on each other.
    """
    inspector = sa.inspect(connection)
    if all(inspector.has_table(table.name) for table in tables):
        return
    dialect_of(connection).xact_lock(connection, tables[0].name)
    for table in tables:
        table.create(connection, checkfirst=True)
