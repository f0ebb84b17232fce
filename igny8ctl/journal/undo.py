"""Generic undo: a run's steps replayed backwards through the same ``Journal``, so an undo
is itself journaled and can be undone.

Undo is checked before it writes, under row locks on everything it restores: every row is
as the run left it (its digest), no row outside the run references a row it would delete
(found from the foreign keys and from igny8's known links, so also where a key was
dropped), and the schema still accepts the before-values (a column made NOT NULL since,
``migrate apply``). Otherwise it refuses, naming the tables and ids, and writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from igny8ctl.db import Igny8Schema, database_errors
from igny8ctl.dialects import dialect_of
from igny8ctl.errors import Igny8Error, Refused
from igny8ctl.journal.runs import RunSummary
from igny8ctl.journal.tables import DELETE, INSERT, UPDATE, journal_tables, primary_key
from igny8ctl.journal.writer import Journal
from igny8ctl.render.text import listing


@dataclass(frozen=True)
class UndoStep:
    step: int
    action: str
    table: str
    rows: int


@dataclass(frozen=True)
class UndoRefusal:
    """Rows of ``table`` that stop the undo, and why."""

    reason: str
    table: str
    ids: tuple[int, ...]


@dataclass(frozen=True)
class UndoPlan:
    """What undoing a run would restore, and what stops it (empty when it can go ahead)."""

    KIND: ClassVar[str] = "fix.undo-plan"

    run: RunSummary
    steps: list[UndoStep]
    refusals: list[UndoRefusal]


@dataclass(frozen=True)
class UndoResult:
    KIND: ClassVar[str] = "fix.undo"

    undone: str
    run_id: str
    rows: int


@dataclass(frozen=True)
class FixHistory:
    KIND: ClassVar[str] = "fix.history"

    runs: list[RunSummary]


def run_steps(connection: Connection, run_id: str) -> list[UndoStep]:
    _, journal = journal_tables(dialect_of(connection))
    rows = connection.execute(
        sa.select(journal.c.step, journal.c.action, journal.c.table_name, sa.func.count())
        .where(journal.c.run_id == run_id)
        .group_by(journal.c.step, journal.c.action, journal.c.table_name)
        .order_by(journal.c.step.desc())
    ).all()
    return [UndoStep(int(r[0]), r[1], r[2], int(r[3])) for r in rows]


def links(schema: Igny8Schema) -> list[tuple[sa.Column[Any], sa.Table]]:
    """(referencing column, referenced table): every foreign key, and igny8's own links
    whether or not the database still has their key."""
    found: dict[tuple[str, str], tuple[sa.Column[Any], sa.Table]] = {}
    for table in schema.metadata.tables.values():
        for fk in table.foreign_keys:
            found[(table.name, fk.parent.name)] = (fk.parent, fk.column.table)
    known = [("user", "account_id", "account"), ("account", "owner_id", "user"),
             ("account", "plan_id", "plan"), ("site", "account_id", "account"),
             ("cluster", "account_id", "account"), ("cluster", "site_id", "site"),
             ("keyword", "account_id", "account"), ("keyword", "site_id", "site"),
             ("keyword", "cluster_id", "cluster"), ("settings", "account_id", "account")]
    for child, column, parent in known:
        try:
            child_table = getattr(schema, child)
            parent_table = getattr(schema, parent).table
        except Igny8Error:
            continue
        col = child_table.columns[column]
        found.setdefault((child_table.table.name, col.name), (col, parent_table))
    return list(found.values())


class _Run:
    """The journal entries of one run, as SQL."""

    def __init__(self, connection: Connection, schema: Igny8Schema, run_id: str) -> None:
        self.connection = connection
        self.schema = schema
        self.dialect = dialect_of(connection)
        self.run_id = run_id
        _, self.journal = journal_tables(self.dialect)
        self.steps = run_steps(connection, run_id)

    def table(self, name: str) -> sa.Table:
        table = self.schema.metadata.tables.get(name)
        if table is None:
            raise Refused(f"run {self.run_id} cannot be undone: table {name} recorded in the "
                          "journal no longer exists", rows={name: []})
        return table

    def entries(self, step: UndoStep) -> sa.ColumnElement[bool]:
        return sa.and_(self.journal.c.run_id == self.run_id, self.journal.c.step == step.step)

    def touched(self, table: str, actions: Sequence[str]) -> sa.Select[tuple[int]]:
        j = self.journal
        return sa.select(j.c.row_id).where(j.c.run_id == self.run_id, j.c.table_name == table,
                                           j.c.action.in_(actions))

    def restored_columns(self, step: UndoStep, target: sa.Table) -> list[sa.Column[Any]]:
        """The columns an update step's before-images hold (all, in journals from before
        digests), present in the table now."""
        image = self.connection.scalar(
            sa.select(self.journal.c.before).where(self.entries(step)).limit(1))
        names = json.loads(image) if isinstance(image, str) else dict(image or {})
        pk = primary_key(target)
        return [target.c[name] for name in names if name in target.c and name != pk.name]

    def ids(self, query: sa.Select[Any]) -> tuple[int, ...]:
        return tuple(int(i) for i in self.connection.scalars(query))


def lock(run: _Run) -> None:
    """Row locks on every row the undo restores, table by table in primary-key order."""
    for table_name in sorted({step.table for step in run.steps}):
        target = run.table(table_name)
        pk = primary_key(target)
        run.connection.execute(run.dialect.lock_rows(
            sa.select(pk).where(pk.in_(run.touched(table_name, (INSERT, UPDATE, DELETE))))
            .order_by(pk), of=target)).all()


def refusals(connection: Connection, schema: Igny8Schema, run_id: str) -> list[UndoRefusal]:
    """Everything that stops ``run_id`` from being undone exactly."""
    return list(_refusals(_Run(connection, schema, run_id)))


def _refusals(run: _Run) -> Iterator[UndoRefusal]:
    j = run.journal
    dialect = run.dialect
    links_to: dict[str, list[sa.Column[Any]]] = {}
    for column, parent in links(run.schema):
        links_to.setdefault(parent.name, []).append(column)
    for step in run.steps:
        target = run.table(step.table)
        pk = primary_key(target)
        later = j.alias("later")
        last = sa.and_(run.entries(step), ~sa.exists().where(
            later.c.run_id == run.run_id, later.c.table_name == j.c.table_name,
            later.c.row_id == j.c.row_id, later.c.step > j.c.step))
        if step.action == DELETE:
            changed = sa.select(j.c.row_id).where(last, sa.exists().where(pk == j.c.row_id))
        else:
            current = sa.select(dialect.recorded_row_digest(
                run.connection, target, j.c.digest)).where(
                pk == j.c.row_id).scalar_subquery()
            legacy = sa.select(dialect.row_image(target)).where(
                pk == j.c.row_id).scalar_subquery()
            changed = sa.select(j.c.row_id).where(last, sa.or_(
                sa.and_(j.c.digest.is_not(None), current.is_distinct_from(j.c.digest)),
                sa.and_(j.c.digest.is_(None), ~dialect.same_image(legacy, j.c.after))))
        ids = run.ids(changed.order_by(j.c.row_id))
        if ids:
            yield UndoRefusal("changed since it ran", step.table, ids)
        if step.action == INSERT:
            yield from _dependents(run, step, target, links_to.get(target.name, []))
        columns = (run.restored_columns(step, target) if step.action == UPDATE
                   else list(target.c) if step.action == DELETE else [])
        yield from _not_accepted(run, step, target, columns)
        yield from _tenant_keys(run, step, target, columns)


def _dependents(run: _Run, step: UndoStep, target: sa.Table,
                columns: Sequence[sa.Column[Any]]) -> Iterator[UndoRefusal]:
    """Rows outside the run that reference rows the undo would delete."""
    j = run.journal
    deleted = sa.select(j.c.row_id).where(run.entries(step))
    for column in columns:
        child = column.table
        assert isinstance(child, sa.Table)
        child_pk = primary_key(child)
        ids = run.ids(sa.select(child_pk).where(
            column.in_(deleted),
            child_pk.not_in(run.touched(child.name, (INSERT, UPDATE)))).order_by(child_pk))
        if ids:
            yield UndoRefusal(f"they reference {target.name} rows it would delete",
                              child.name, ids)


def _not_accepted(run: _Run, step: UndoStep, target: sa.Table,
                  columns: Sequence[sa.Column[Any]]) -> Iterator[UndoRefusal]:
    """Before-values the table would now reject: NULL where NULL is no longer allowed."""
    j = run.journal
    required = [c for c in columns if not c.nullable and c is not primary_key(target)]
    user = _user_account_column(run, target)
    if user is not None and user in columns and user not in required:
        required.append(user)
    for column in required:
        value = run.dialect.image_field(j.c.before, column)
        ids = run.ids(sa.select(j.c.row_id).where(run.entries(step), value.is_(None))
                      .order_by(j.c.row_id))
        if ids:
            yield UndoRefusal(f"{target.name}.{column.name} no longer accepts NULL",
                              target.name, ids)


def _tenant_keys(run: _Run, step: UndoStep, target: sa.Table,
                 columns: Sequence[sa.Column[Any]]) -> Iterator[UndoRefusal]:
    """Restored rows a composite tenant key (``migrate apply``) would reject: the parent
    they would point at is not in their tenant."""
    from igny8ctl.catalog import derived_links, tenant_key_states

    restored = {column.name for column in columns}
    try:
        links = [link for link in derived_links(run.schema)
                 if link.child == target.name and restored & set(link.columns)]
    except Igny8Error:
        return
    j = run.journal
    pk = primary_key(target)
    for state in tenant_key_states(run.connection, run.schema, links):
        if not state.foreign_keys:
            continue
        link = state.link
        parent = run.table(link.parent)
        values = [run.dialect.image_field(j.c.before, target.c[name]) if name in restored
                  else target.c[name] for name in link.columns]
        ids = run.ids(
            sa.select(j.c.row_id).select_from(j.outerjoin(target, pk == j.c.row_id))
            .where(run.entries(step), *(value.is_not(None) for value in values),
                   ~sa.exists().where(*(parent.c[name] == value for name, value
                                        in zip(link.parent_columns, values, strict=True))))
            .order_by(j.c.row_id))
        if ids:
            yield UndoRefusal(f"the tenant key of {target.name}.{link.columns[0]} would "
                              f"reject them ({link.parent} in another tenant)", target.name, ids)


def _user_account_column(run: _Run, target: sa.Table) -> sa.Column[Any] | None:
    """``user.account_id`` when a check constraint (``migrate apply``) forbids NULL in it."""
    try:
        user, account = run.schema.user, run.schema.account
    except Igny8Error:
        return None
    if target is not user.table:
        return None
    state = run.dialect.account_column(run.connection, user.table, user.account_id.name,
                                       account.table)
    return user.account_id if state.not_null or state.not_null_checks else None


def refusal_error(run_id: str, found: Sequence[UndoRefusal]) -> Refused:
    """One line naming the tables and ids; every id in ``rows`` (``--format json``)."""
    parts = []
    rows: dict[str, list[int]] = {}
    for refusal in found:
        parts.append(f"{refusal.table} {listing(refusal.ids)} ({refusal.reason})")
        rows.setdefault(refusal.table, []).extend(refusal.ids)
    return Refused(f"run {run_id} cannot be undone, nothing was written: " + "; ".join(parts),
                   rows={table: sorted(set(ids)) for table, ids in rows.items()},
                   run_id=run_id)


def undo(journal: Journal, schema: Igny8Schema, run_id: str,
         statement_timeout_ms: int | None = None) -> int:
    """Restore what ``run_id`` changed, step by step in reverse, through ``journal``."""
    run = _Run(journal.connection, schema, run_id)
    lock(run)
    journal.locked = {step.table for step in run.steps}
    found = list(_refusals(run))
    if found:
        raise refusal_error(run_id, found)
    total = 0
    for number, step in enumerate(run.steps, start=1):
        target = run.table(step.table)
        with database_errors(during=f"undo {run_id} step {number} (restoring {target.name})",
                             statement_timeout_ms=statement_timeout_ms):
            try:
                total += _restore(journal, run, step, target)
                if number == len(run.steps):
                    journal.dialect.check_constraints_now(journal.connection)
            except sa_exc.IntegrityError as error:
                diag = getattr(error.orig, "diag", None)
                constraint = getattr(diag, "constraint_name", None) or "a constraint"
                table = getattr(diag, "table_name", None) or target.name
                raise Refused(f"run {run_id} cannot be undone, nothing was written: "
                              f"{constraint} of {table} no longer accepts what it would "
                              "restore", rows={table: []}, run_id=run_id) from None
    return total


def _restore(journal: Journal, run: _Run, step: UndoStep, target: sa.Table) -> int:
    entries = run.journal
    dialect = journal.dialect
    pk = primary_key(target)
    mine = run.entries(step)
    touched = sa.select(entries.c.row_id).where(mine)
    if step.action == INSERT:
        return journal.delete(target, pk.in_(touched))
    if step.action == UPDATE:
        # Each value is found by the journal's primary key (run, step, row): no plan here
        # depends on the journal's statistics.
        values = {
            column.name: sa.select(dialect.image_field(entries.c.before, column))
            .where(mine, entries.c.row_id == pk).scalar_subquery()
            for column in run.restored_columns(step, target)
        }
        return journal.update(target, values, pk.in_(touched))
    restored = sa.select(*(dialect.image_field(entries.c.before, column)
                           for column in target.c)).where(mine)
    return journal.insert(target, [c.name for c in target.c], restored)
