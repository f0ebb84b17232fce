"""The journal's two tables: ``igny8ctl_runs`` (who, where, when, what) and
``igny8ctl_journal`` (the rows each statement touched). Created on first use, inside the
first writer's transaction.

An entry holds what undo needs and no more: for an update, the before-values of the
columns the statement set (``before``) and a digest of the whole row after it
(``digest``, for "changed since"); for an insert, the new row's id and digest; for a
delete, the whole row (``before``). ``after`` is only read from journals written before
digests existed.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.dialects import Dialect, dialect_of
from igny8ctl.errors import ConfigError
from igny8ctl.tool_tables import ensure_tables

JOURNAL_TABLE = "igny8ctl_journal"
RUNS_TABLE = "igny8ctl_runs"
#: No run id is longer (``tool_tables.new_run_id`` makes 22 characters).
RUN_ID_LENGTH = 40

INSERT, UPDATE, DELETE = "insert", "update", "delete"
DIGEST = "digest"


def journal_tables(dialect: Dialect) -> tuple[sa.Table, sa.Table]:
    """The two journal tables, typed for ``dialect`` (JSON on PostgreSQL, text on SQLite).

    ``json`` rather than ``jsonb``: images are written far more often than compared, and
    ``to_json`` costs less than ``to_jsonb``; comparisons cast to ``jsonb``.
    """
    metadata = sa.MetaData()
    image = dialect.image_type()
    runs = sa.Table(
        RUNS_TABLE, metadata,
        sa.Column("run_id", sa.String(RUN_ID_LENGTH), primary_key=True),
        sa.Column("job", sa.String(80), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rows_changed", sa.BigInteger, nullable=False),
        sa.Column("steps", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("operator", sa.String(150), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("undoes", sa.String(RUN_ID_LENGTH)),
        sa.Column("undone_by", sa.String(RUN_ID_LENGTH)),
    )
    # A statement touches a row once, so (run, step, row) identifies an entry: one index
    # serves as key and as the path undo takes, and each imaged row costs one btree insert.
    journal = sa.Table(
        JOURNAL_TABLE, metadata,
        sa.Column("run_id", sa.String(RUN_ID_LENGTH), primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("row_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("table_name", sa.String(255), nullable=False),
        sa.Column("before", image),
        sa.Column("after", image),
        sa.Column("digest", sa.String(64)),
    )
    return runs, journal


def ensure_journal(connection: Connection) -> tuple[sa.Table, sa.Table]:
    """Create the journal tables if needed, inside the caller's transaction.

    Only a first apply takes the creation lock, so journaled runs do not wait on each other.
    """
    dialect = dialect_of(connection)
    runs, journal = journal_tables(dialect)
    ensure_tables(connection, journal, runs)
    if DIGEST not in {c["name"] for c in sa.inspect(connection).get_columns(JOURNAL_TABLE)}:
        # A journal written before digests: its entries keep their whole images.
        dialect.xact_lock(connection, JOURNAL_TABLE)
        connection.exec_driver_sql(
            f"ALTER TABLE {dialect.quote(JOURNAL_TABLE)} ADD COLUMN {DIGEST} varchar(64)")
    return runs, journal


def primary_key(table: sa.Table) -> sa.Column[Any]:
    columns = list(table.primary_key.columns)
    if len(columns) != 1:
        raise ConfigError(f"table {table.name} has no single-column primary key to journal")
    return columns[0]
