"""Writes that record themselves: every change igny8ctl makes goes through ``Journal``.

An insert, update or delete is one set-based statement (a *step*), and what undo needs of
the rows it touches goes into ``igny8ctl_journal`` in the same transaction
(``igny8ctl.journal.tables`` says what). Values are imaged as JSON and restored by casting
each field back to the column's type (``igny8ctl.dialects``), which reproduces the stored
values exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.dialects import dialect_of
from igny8ctl.journal.runs import RunInfo
from igny8ctl.journal.tables import DELETE, INSERT, UPDATE, ensure_journal, primary_key


class Journal:
    """Insert, update and delete, each recorded in the same transaction."""

    def __init__(self, connection: Connection, run: RunInfo, first_step: int = 1) -> None:
        self.connection = connection
        self.run = run
        self.dialect = dialect_of(connection)
        self.runs, self.table = ensure_journal(connection)
        self.step = first_step - 1
        self.rows_changed = 0
        #: Tables whose rows this journal writes are all row-locked by the caller already.
        self.locked: set[str] = set()

    def _next_step(self) -> int:
        self.step += 1
        return self.step

    def _step_rows(self, step: int) -> sa.Select[tuple[int]]:
        return sa.select(self.table.c.row_id).where(
            self.table.c.run_id == self.run.run_id, self.table.c.step == step)

    def _entry(self, step: int, action: str, target: sa.Table) -> list[Any]:
        return [sa.literal(self.run.run_id), sa.literal(step), sa.literal(action),
                sa.literal(target.name)]

    def _record(self, columns: Sequence[str], select: sa.Select[Any]) -> int:
        return int(self.connection.execute(
            sa.insert(self.table).from_select(
                ["run_id", "step", "action", "table_name", "row_id", *columns], select),
            execution_options={"preserve_rowcount": True},
        ).rowcount or 0)

    def _image_before(self, step: int, action: str, target: sa.Table,
                      where: sa.ColumnElement[bool],
                      columns: Sequence[sa.Column[Any]] | None = None) -> int:
        pk = primary_key(target)
        return self._record(["before"], sa.select(
            *self._entry(step, action, target), pk, self.dialect.row_image(target, columns),
        ).where(where))

    def _digest_after(self, step: int, target: sa.Table) -> None:
        pk = primary_key(target)
        self.connection.execute(
            sa.update(self.table)
            .where(self.table.c.run_id == self.run.run_id, self.table.c.step == step)
            .values(digest=sa.select(self.dialect.row_digest(self.connection, target))
                    .where(pk == self.table.c.row_id).scalar_subquery())
        )

    def update(self, target: sa.Table, values: Mapping[str, Any],
               where: sa.ColumnElement[bool]) -> int:
        """``UPDATE target SET values WHERE where``; values may be correlated subqueries.

        Journals the before-values of the columns set and a digest of each row after.
        """
        step = self._next_step()
        changed = [target.c[name] for name in values]
        if self.dialect.writes_in_ctes and target.name in self.locked:
            count = self._update_locked(step, target, values, where, changed)
        elif self.dialect.writes_in_ctes:
            count = self._update_imaged(step, target, values, where, changed)
        else:
            count = self._image_before(step, UPDATE, target, where, changed)
            if count:
                self.connection.execute(
                    sa.update(target).where(primary_key(target).in_(self._step_rows(step)))
                    .values(**values)
                )
                self._digest_after(step, target)
        self.rows_changed += count
        return count

    def _update_imaged(self, step: int, target: sa.Table, values: Mapping[str, Any],
                       where: sa.ColumnElement[bool], changed: Sequence[sa.Column[Any]]) -> int:
        """PostgreSQL, one statement: lock and image the rows, update them joined by primary
        key (no join of two CTEs, whose sizes the planner cannot know), journal what the
        update returns."""
        pk = primary_key(target)
        before = (sa.select(pk.label("row_id"),
                            self.dialect.row_image(target, changed).label("image"))
                  .where(where).with_for_update(of=target).cte("before_rows"))
        updated = (sa.update(target).where(pk == before.c.row_id).values(**values)
                   .returning(pk.label("row_id"), before.c.image.label("image"),
                              self.dialect.row_digest(self.connection, target).label("digest"))
                   .cte("updated"))
        return self._record(["before", "digest"], sa.select(
            *self._entry(step, UPDATE, target), updated.c.row_id, updated.c.image,
            updated.c.digest))

    def _update_locked(self, step: int, target: sa.Table, values: Mapping[str, Any],
                       where: sa.ColumnElement[bool], changed: Sequence[sa.Column[Any]]) -> int:
        """PostgreSQL, rows the caller holds locked: the before-values come from a self-join
        (the statement's snapshot, which nobody can have changed), so each row is looked up
        once, not locked and imaged by a statement of its own first."""
        pk = primary_key(target)
        old = target.alias("old")
        updated = (sa.update(target).where(pk == old.c[pk.name], where).values(**values)
                   .returning(pk.label("row_id"),
                              self.dialect.row_image(old, [old.c[c.name] for c in changed])
                              .label("image"),
                              self.dialect.row_digest(self.connection, target).label("digest"))
                   .cte("updated"))
        return self._record(["before", "digest"], sa.select(
            *self._entry(step, UPDATE, target), updated.c.row_id, updated.c.image,
            updated.c.digest))

    def delete(self, target: sa.Table, where: sa.ColumnElement[bool]) -> int:
        """Deleted rows are journaled whole: undo puts them back as they were."""
        step = self._next_step()
        pk = primary_key(target)
        if self.dialect.writes_in_ctes:
            deleted = (sa.delete(target).where(where)
                       .returning(pk.label("row_id"), self.dialect.row_image(target).label("image"))
                       .cte("deleted"))
            count = self._record(["before"], sa.select(
                *self._entry(step, DELETE, target), deleted.c.row_id, deleted.c.image))
        else:
            count = self._image_before(step, DELETE, target, where)
            if count:
                self.connection.execute(
                    sa.delete(target).where(primary_key(target).in_(self._step_rows(step))))
        self.rows_changed += count
        return count

    def insert(self, target: sa.Table, columns: Sequence[str], rows: sa.Select[Any]) -> int:
        """``INSERT INTO target (columns) SELECT ...``, journaling each new id and digest."""
        step = self._next_step()
        pk = primary_key(target)
        if self.dialect.writes_in_ctes:
            inserted = (sa.insert(target).from_select(list(columns), rows)
                        .returning(pk.label("row_id"),
                                   self.dialect.row_digest(self.connection, target).label("digest"))
                        .cte("inserted"))
            count = self._record(["digest"], sa.select(
                *self._entry(step, INSERT, target), inserted.c.row_id, inserted.c.digest))
        else:
            new_rows: sa.ColumnElement[bool]
            if pk.name in columns:
                # Rows given their ids (an undo restoring deleted rows) are found by them.
                source = rows.subquery("source")
                new_rows = pk.in_(sa.select(source.c[list(columns).index(pk.name)]))
            else:
                # SQLite serialises writers: new rows are exactly those above the old max.
                highest = self.connection.scalar(
                    sa.select(sa.func.coalesce(sa.func.max(pk), 0)))
                new_rows = pk > highest
            self.connection.execute(sa.insert(target).from_select(list(columns), rows))
            count = self._record(["digest"], sa.select(
                *self._entry(step, INSERT, target), pk,
                self.dialect.row_digest(self.connection, target)).where(new_rows))
        self.rows_changed += count
        return count

    def analyze(self) -> None:
        """Give the planner statistics of the rows just journaled, so an undo's statements
        are planned for their real size (a fresh journal looks empty)."""
        self.dialect.analyze(self.connection, self.table)

    def insert_values(self, target: sa.Table, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert literal rows (e.g. a model's proposal), imaging them like ``insert``.

        Rows go in chunks below SQLite's limit on compound SELECTs, one step per chunk.
        """
        count = 0
        for start in range(0, len(rows), 400):
            chunk = rows[start:start + 400]
            columns = list(chunk[0])
            selects = [
                sa.select(*(sa.literal(row[name], type_=target.c[name].type).label(name)
                            for name in columns))
                for row in chunk
            ]
            source = selects[0] if len(selects) == 1 else sa.union_all(*selects)
            count += self.insert(target, columns, sa.select(source.subquery("new_rows")))
        return count

    def record_run(self, status: str) -> None:
        """Upsert this run's row: called at the end of every committed batch."""
        run = self.run
        values = {
            "job": run.job, "params": json.dumps(run.params, sort_keys=True, default=str),
            "status": status, "rows_changed": self.rows_changed, "steps": self.step,
            "started_at": run.started_at, "finished_at": datetime.now(UTC),
            "operator": run.operator, "host": run.host, "command": run.command,
            "undoes": run.undoes,
        }
        updated = self.connection.execute(
            sa.update(self.runs).where(self.runs.c.run_id == run.run_id).values(
                status=status, finished_at=values["finished_at"], steps=self.step,
                rows_changed=self.runs.c.rows_changed + self.rows_changed)
        ).rowcount
        if not updated:
            self.connection.execute(sa.insert(self.runs).values(run_id=run.run_id, **values))
        self.rows_changed = 0
        if run.undoes:
            self.connection.execute(sa.update(self.runs).where(
                self.runs.c.run_id == run.undoes).values(undone_by=run.run_id))
