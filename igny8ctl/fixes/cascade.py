"""Deleting rows the way Django's on_delete would, since the database has no ON DELETE.

Every foreign key that points at a deleted row is found by reflection: a nullable one is
cleared (SET_NULL), a NOT NULL one has its rows deleted in turn (CASCADE).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.db import Igny8Schema
from igny8ctl.errors import ConfigError
from igny8ctl.fixes.base import DELETE, UPDATE, Operation
from igny8ctl.journal.tables import primary_key


def referencing_rows(connection: Connection, schema: Igny8Schema, table: sa.Table,
                     where: sa.ColumnElement[bool]) -> list[tuple[str, int]]:
    """(``table.column``, rows) for every foreign key holding a reference to the rows."""
    targets = sa.select(primary_key(table)).where(where)
    found = []
    for fk in schema.references_to(table):
        count = connection.scalar(
            sa.select(sa.func.count()).select_from(fk.parent.table)
            .where(fk.parent.in_(targets))
        )
        if count:
            found.append((f"{fk.parent.table.name}.{fk.parent.name}", int(count)))
    return found


def has_references(schema: Igny8Schema, table: sa.Table) -> sa.ColumnElement[bool]:
    """True for rows of ``table`` that some row elsewhere still references."""
    pk = primary_key(table)
    return sa.or_(sa.false(), *(
        sa.exists().where(fk.parent == pk) for fk in schema.references_to(table)
        if fk.parent.table is not table
    ))


def cascade_delete(schema: Igny8Schema, table: sa.Table, where: sa.ColumnElement[bool],
                   _path: tuple[str, ...] = ()) -> list[Operation]:
    """Operations that delete the rows and clear or delete whatever references them."""
    if table.name in _path:
        raise ConfigError("cannot cascade through the cycle " + " -> ".join((*_path, table.name)))
    targets = sa.select(primary_key(table)).where(where)
    operations: list[Operation] = []
    for fk in schema.references_to(table):
        child, column = fk.parent.table, fk.parent
        condition = column.in_(targets)
        if column.nullable:
            operations.append(Operation(
                UPDATE, child, f"clear {child.name}.{column.name} (as SET_NULL)",
                where=condition, values={column.name: None}))
        elif child is not table:
            operations += cascade_delete(schema, child, condition, (*_path, table.name))
    operations.append(Operation(DELETE, table, f"delete {table.name} rows", where=where))
    return operations
