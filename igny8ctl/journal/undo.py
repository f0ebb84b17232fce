"""Generic undo: a run's steps replayed backwards through the same ``Journal``, so an undo
is itself journaled and can be undone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.dialects import dialect_of
from igny8ctl.errors import Refused
from igny8ctl.journal.tables import DELETE, INSERT, UPDATE, journal_tables, primary_key
from igny8ctl.journal.writer import Journal


@dataclass(frozen=True)
class UndoStep:
    step: int
    action: str
    table: str
    rows: int


def run_steps(connection: Connection, run_id: str) -> list[UndoStep]:
    _, journal = journal_tables(dialect_of(connection))
    rows = connection.execute(
        sa.select(journal.c.step, journal.c.action, journal.c.table_name, sa.func.count())
        .where(journal.c.run_id == run_id)
        .group_by(journal.c.step, journal.c.action, journal.c.table_name)
        .order_by(journal.c.step.desc())
    ).all()
    return [UndoStep(int(r[0]), r[1], r[2], int(r[3])) for r in rows]


def undo_conflicts(connection: Connection, metadata: sa.MetaData,
                   run_id: str) -> list[tuple[str, list[int]]]:
    """Rows the run touched that changed since (or came back, for deleted rows).

    A row touched by several steps is compared with the last one only.
    """
    dialect = dialect_of(connection)
    _, journal = journal_tables(dialect)
    conflicts = []
    for step in run_steps(connection, run_id):
        target = _table(metadata, step.table)
        pk = primary_key(target)
        later = journal.alias("later")
        superseded = sa.exists().where(
            later.c.run_id == run_id, later.c.table_name == journal.c.table_name,
            later.c.row_id == journal.c.row_id, later.c.step > journal.c.step)
        entries = sa.select(journal.c.row_id, journal.c.after).where(
            journal.c.run_id == run_id, journal.c.step == step.step, ~superseded
        ).subquery("entries")
        if step.action == DELETE:
            changed = sa.select(entries.c.row_id).where(
                sa.exists().where(pk == entries.c.row_id))
        else:
            current: sa.ColumnElement[Any] = sa.select(dialect.row_image(target)).where(
                pk == entries.c.row_id).scalar_subquery()
            changed = sa.select(entries.c.row_id).where(
                ~dialect.same_image(current, entries.c.after))
        ids = connection.scalars(changed.order_by(entries.c.row_id).limit(10)).all()
        if ids:
            conflicts.append((step.table, [int(i) for i in ids]))
    return conflicts


def undo(journal: Journal, metadata: sa.MetaData, run_id: str) -> int:
    """Restore what ``run_id`` changed, step by step in reverse, through ``journal``."""
    if journal.dialect.row_locks:
        # Hold the rows the run touched, so nothing changes them between the conflict
        # check and the restore.
        for step in run_steps(journal.connection, run_id):
            target = _table(metadata, step.table)
            journal.connection.execute(
                sa.select(primary_key(target)).where(primary_key(target).in_(
                    sa.select(journal.table.c.row_id).where(
                        journal.table.c.run_id == run_id, journal.table.c.step == step.step)))
                .with_for_update())
    conflicts = undo_conflicts(journal.connection, metadata, run_id)
    if conflicts:
        listed = "; ".join(f"{table} {', '.join(map(str, ids))}" for table, ids in conflicts)
        raise Refused(f"run {run_id} cannot be undone: rows changed since it ran ({listed})")
    entries = journal.table
    dialect = journal.dialect
    total = 0
    for step in run_steps(journal.connection, run_id):
        target = _table(metadata, step.table)
        pk = primary_key(target)
        mine = sa.and_(entries.c.run_id == run_id, entries.c.step == step.step)
        touched = sa.select(entries.c.row_id).where(mine)
        if step.action == INSERT:
            total += journal.delete(target, pk.in_(touched))
        elif step.action == UPDATE:
            values = {
                column.name: sa.select(dialect.image_field(entries.c.before, column))
                .where(mine, entries.c.row_id == pk).scalar_subquery()
                for column in target.c if column is not pk
            }
            total += journal.update(target, values, pk.in_(touched))
        else:
            restored = sa.select(*(dialect.image_field(entries.c.before, column)
                                   for column in target.c)).where(mine)
            total += journal.insert(target, [c.name for c in target.c], restored)
    return total


def _table(metadata: sa.MetaData, name: str) -> sa.Table:
    table = metadata.tables.get(name)
    if table is None:
        raise Refused(f"table {name} recorded in the journal no longer exists")
    return table
