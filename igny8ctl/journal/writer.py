"""Writes that record themselves: every change igny8ctl makes goes through ``Journal``.

An insert, update or delete is one set-based statement (a *step*), and the rows it touches
are imaged into ``igny8ctl_journal`` in the same transaction: the row before an update or
delete, the row after an insert or update. Rows are imaged as JSON and restored by casting
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
    """Insert, update and delete, each recorded with row images in the same transaction."""

    def __init__(self, connection: Connection, run: RunInfo, first_step: int = 1) -> None:
        self.connection = connection
        self.run = run
        self.dialect = dialect_of(connection)
        self.runs, self.table = ensure_journal(connection)
        self.step = first_step - 1
        self.rows_changed = 0

    def _next_step(self) -> int:
        self.step += 1
        return self.step

    def _step_rows(self, step: int) -> sa.Select[tuple[int]]:
        return sa.select(self.table.c.row_id).where(
            self.table.c.run_id == self.run.run_id, self.table.c.step == step)

    def _image_before(self, step: int, action: str, target: sa.Table,
                      where: sa.ColumnElement[bool]) -> int:
        pk = primary_key(target)
        select = sa.select(
            sa.literal(self.run.run_id), sa.literal(step), sa.literal(action),
            sa.literal(target.name), pk, self.dialect.row_image(target),
        ).where(where)
        result = self.connection.execute(
            sa.insert(self.table).from_select(
                ["run_id", "step", "action", "table_name", "row_id", "before"], select),
            execution_options={"preserve_rowcount": True},
        )
        return int(result.rowcount or 0)

    def _image_after(self, step: int, target: sa.Table) -> None:
        pk = primary_key(target)
        self.connection.execute(
            sa.update(self.table)
            .where(self.table.c.run_id == self.run.run_id, self.table.c.step == step)
            .values(after=sa.select(self.dialect.row_image(target))
                    .where(pk == self.table.c.row_id).scalar_subquery())
        )

    def update(self, target: sa.Table, values: Mapping[str, Any],
               where: sa.ColumnElement[bool]) -> int:
        """``UPDATE target SET values WHERE where``; values may be correlated subqueries."""
        step = self._next_step()
        if self.dialect.writes_in_ctes:
            count = self._update_imaged(step, target, values, where)
        else:
            count = self._image_before(step, UPDATE, target, where)
            if count:
                self.connection.execute(
                    sa.update(target).where(primary_key(target).in_(self._step_rows(step)))
                    .values(**values)
                )
                self._image_after(step, target)
        self.rows_changed += count
        return count

    def _update_imaged(self, step: int, target: sa.Table, values: Mapping[str, Any],
                       where: sa.ColumnElement[bool]) -> int:
        """PostgreSQL: lock and image, update, and journal both images in one statement."""
        pk = primary_key(target)
        before = (sa.select(pk.label("row_id"), self.dialect.row_image(target).label("image"))
                  .where(where).with_for_update(of=target).cte("before_rows"))
        updated = (sa.update(target).where(pk == before.c.row_id).values(**values)
                   .returning(*target.c).cte("updated"))
        return self._journal_from(step, UPDATE, target, updated, before)

    def delete(self, target: sa.Table, where: sa.ColumnElement[bool]) -> int:
        step = self._next_step()
        if self.dialect.writes_in_ctes:
            deleted = sa.delete(target).where(where).returning(*target.c).cte("deleted")
            count = self._journal_from(step, DELETE, target, deleted)
        else:
            count = self._image_before(step, DELETE, target, where)
            if count:
                self.connection.execute(
                    sa.delete(target).where(primary_key(target).in_(self._step_rows(step))))
        self.rows_changed += count
        return count

    def _journal_from(self, step: int, action: str, target: sa.Table, changed: sa.CTE,
                      before: sa.CTE | None = None) -> int:
        """Journal the rows a data-modifying CTE returned (PostgreSQL)."""
        key = changed.c[primary_key(target).name]
        image = self.dialect.row_image(changed)
        images: dict[str, sa.ColumnElement[Any]] = (
            {"before": image} if action == DELETE else {"after": image})
        source: sa.FromClause = changed
        if before is not None:
            images["before"] = before.c.image
            source = changed.join(before, before.c.row_id == key)
        return int(self.connection.execute(
            sa.insert(self.table).from_select(
                ["run_id", "step", "action", "table_name", "row_id", *images],
                sa.select(sa.literal(self.run.run_id), sa.literal(step), sa.literal(action),
                          sa.literal(target.name), key, *images.values()).select_from(source),
            ),
            execution_options={"preserve_rowcount": True},
        ).rowcount or 0)

    def insert(self, target: sa.Table, columns: Sequence[str], rows: sa.Select[Any]) -> int:
        """``INSERT INTO target (columns) SELECT ...``, imaging every inserted row."""
        step = self._next_step()
        pk = primary_key(target)
        if self.dialect.writes_in_ctes:
            inserted = (sa.insert(target).from_select(list(columns), rows)
                        .returning(*target.c).cte("inserted"))
            count = self._journal_from(step, INSERT, target, inserted)
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
            count = int(self.connection.execute(
                sa.insert(self.table).from_select(
                    ["run_id", "step", "action", "table_name", "row_id", "after"],
                    sa.select(sa.literal(self.run.run_id), sa.literal(step),
                              sa.literal(INSERT), sa.literal(target.name), pk,
                              self.dialect.row_image(target)).where(new_rows),
                ),
                execution_options={"preserve_rowcount": True},
            ).rowcount or 0)
        self.rows_changed += count
        return count

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
