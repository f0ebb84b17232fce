"""Writes that record themselves, and the generic undo built from the same writes.

Every change igny8ctl makes goes through ``Journal``: an insert, update or delete is one
set-based statement (a *step*), and the rows it touches are imaged into
``igny8ctl_journal`` in the same transaction: the row before an update or delete, the row
after an insert or update. Runs (who, where, when, what) live in ``igny8ctl_runs``.

Undo replays a run's steps backwards through the same ``Journal``, so an undo is itself
journaled and can be undone. Rows are imaged as JSON (``to_json`` on PostgreSQL,
``json_object`` on SQLite) and restored by casting each field back to the column's type,
which reproduces the stored values exactly.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import shlex
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.errors import ConfigError, Refused
from igny8ctl.redact import MASK, redact

JOURNAL_TABLE = "igny8ctl_journal"
RUNS_TABLE = "igny8ctl_runs"

INSERT, UPDATE, DELETE = "insert", "update", "delete"


def journal_tables(dialect: str) -> tuple[sa.Table, sa.Table]:
    """The two journal tables, typed for ``dialect`` (JSON on PostgreSQL, text on SQLite).

    ``json`` rather than ``jsonb``: images are written far more often than compared, and
    ``to_json`` costs less than ``to_jsonb``; comparisons cast to ``jsonb``.
    """
    metadata = sa.MetaData()
    image: sa.types.TypeEngine[Any]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import JSON

        image = JSON()
    else:
        image = sa.Text()
    runs = sa.Table(
        RUNS_TABLE, metadata,
        sa.Column("run_id", sa.String(40), primary_key=True),
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
        sa.Column("undoes", sa.String(40)),
        sa.Column("undone_by", sa.String(40)),
    )
    # A statement touches a row once, so (run, step, row) identifies an entry: one index
    # serves as key and as the path undo takes, and each imaged row costs one btree insert.
    journal = sa.Table(
        JOURNAL_TABLE, metadata,
        sa.Column("run_id", sa.String(40), primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("row_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("table_name", sa.String(255), nullable=False),
        sa.Column("before", image),
        sa.Column("after", image),
    )
    return runs, journal


def ensure_journal(connection: Connection) -> tuple[sa.Table, sa.Table]:
    """Create the journal tables if needed, inside the caller's transaction.

    Only a first apply takes the creation lock, so journaled runs do not wait on each other.
    """
    runs, journal = journal_tables(connection.dialect.name)
    inspector = sa.inspect(connection)
    if not (inspector.has_table(RUNS_TABLE) and inspector.has_table(JOURNAL_TABLE)):
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(
                "SELECT pg_advisory_xact_lock(hashtext('igny8ctl_journal'))")
        runs.metadata.create_all(connection, checkfirst=True)
    return runs, journal


@dataclass(frozen=True)
class RunInfo:
    """A journaled run: its id and where it came from."""

    run_id: str
    job: str
    params: Mapping[str, Any]
    operator: str
    host: str
    command: str
    started_at: datetime
    undoes: str | None = None

    @classmethod
    def new(cls, job: str, params: Mapping[str, Any], undoes: str | None = None) -> RunInfo:
        now = datetime.now(UTC)
        return cls(
            run_id=now.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3),
            job=job, params=dict(params), operator=_operator(), host=socket.gethostname(),
            command=sanitized_command(sys.argv[1:]), started_at=now, undoes=undoes,
        )


SECRET_OPTIONS = ("--api-key", "--password")


def sanitized_command(argv: Sequence[str]) -> str:
    """The command line as typed, with passwords and API keys masked."""
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            shown.append(MASK)
            hide_next = False
        elif arg in SECRET_OPTIONS:
            shown.append(arg)
            hide_next = True
        elif arg.startswith(tuple(option + "=" for option in SECRET_OPTIONS)):
            shown.append(arg.split("=", 1)[0] + "=" + MASK)
        else:
            shown.append(redact(arg))
    return shlex.join(["igny8ctl", *shown])


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def row_image(table: sa.Table, dialect: str) -> sa.ColumnElement[Any]:
    """The whole row of ``table`` as one JSON value."""
    if dialect == "postgresql":
        return sa.func.to_json(sa.literal_column('"' + table.name.replace('"', '""') + '"'))
    pairs: list[Any] = []
    for column in table.c:
        pairs += [sa.literal(column.name), column]
    return sa.func.json_object(*pairs)


def image_field(image: sa.ColumnElement[Any], column: sa.Column[Any],
                dialect: str) -> sa.ColumnElement[Any]:
    """One field of a row image, cast back to ``column``'s own type."""
    if dialect == "postgresql":
        return sa.cast(image.op("->>", return_type=sa.Text)(sa.literal(column.name, sa.Text)),
                       column.type)
    path = '$."' + column.name.replace('"', '\\"') + '"'
    return sa.type_coerce(sa.func.json_extract(image, path), column.type)


class Journal:
    """Insert, update and delete, each recorded with row images in the same transaction."""

    def __init__(self, connection: Connection, run: RunInfo, first_step: int = 1) -> None:
        self.connection = connection
        self.run = run
        self.dialect = connection.dialect.name
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
            sa.literal(target.name), pk, row_image(target, self.dialect),
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
            .values(after=sa.select(row_image(target, self.dialect))
                    .where(pk == self.table.c.row_id).scalar_subquery())
        )

    def update(self, target: sa.Table, values: Mapping[str, Any],
               where: sa.ColumnElement[bool]) -> int:
        """``UPDATE target SET values WHERE where``; values may be correlated subqueries."""
        step = self._next_step()
        if self.dialect == "postgresql":
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
        before = (sa.select(pk.label("row_id"), row_image(target, self.dialect).label("image"))
                  .where(where).with_for_update(of=target).cte("before_rows"))
        updated = (sa.update(target).where(pk == before.c.row_id).values(**values)
                   .returning(*target.c).cte("updated"))
        return self._journal_from(step, UPDATE, target, updated, before)

    def delete(self, target: sa.Table, where: sa.ColumnElement[bool]) -> int:
        step = self._next_step()
        if self.dialect == "postgresql":
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
        image = sa.func.to_json(sa.literal_column(changed.name))
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
        if self.dialect == "postgresql":
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
                              row_image(target, self.dialect)).where(new_rows),
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


def primary_key(table: sa.Table) -> sa.Column[Any]:
    columns = list(table.primary_key.columns)
    if len(columns) != 1:
        raise ConfigError(f"table {table.name} has no single-column primary key to journal")
    return columns[0]


# -- reading and undoing runs --------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    job: str
    params: Mapping[str, Any]
    status: str
    rows_changed: int
    started_at: datetime
    finished_at: datetime | None
    operator: str
    host: str
    command: str
    undoes: str | None
    undone_by: str | None


def list_runs(connection: Connection, limit: int = 50,
              job: str | None = None) -> list[RunSummary]:
    runs, _ = journal_tables(connection.dialect.name)
    if not sa.inspect(connection).has_table(RUNS_TABLE):
        return []
    query = sa.select(runs).order_by(runs.c.started_at.desc(), runs.c.run_id.desc()).limit(limit)
    if job:
        query = query.where(runs.c.job == job)
    return [_summary(row) for row in connection.execute(query).mappings()]


def get_run(connection: Connection, run_id: str) -> RunSummary:
    runs, _ = journal_tables(connection.dialect.name)
    row = None
    if sa.inspect(connection).has_table(RUNS_TABLE):
        row = connection.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().first()
    if row is None:
        raise ConfigError(f"no run {run_id!r} in the journal (see igny8ctl fix history)")
    return _summary(row)


def _summary(row: sa.RowMapping) -> RunSummary:
    return RunSummary(
        run_id=row["run_id"], job=row["job"], params=json.loads(row["params"]),
        status=row["status"], rows_changed=int(row["rows_changed"]),
        started_at=_aware(row["started_at"]), finished_at=_aware(row["finished_at"]),
        operator=row["operator"], host=row["host"], command=row["command"],
        undoes=row["undoes"], undone_by=row["undone_by"],
    )


def _aware(value: datetime | None) -> Any:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class UndoStep:
    step: int
    action: str
    table: str
    rows: int


def run_steps(connection: Connection, run_id: str) -> list[UndoStep]:
    _, journal = journal_tables(connection.dialect.name)
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
    dialect = connection.dialect.name
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
            current: sa.ColumnElement[Any] = sa.select(row_image(target, dialect)).where(
                pk == entries.c.row_id).scalar_subquery()
            recorded: sa.ColumnElement[Any] = entries.c.after
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import JSONB

                current, recorded = sa.cast(current, JSONB), sa.cast(recorded, JSONB)
            changed = sa.select(entries.c.row_id).where(current.is_distinct_from(recorded))
        ids = connection.scalars(changed.order_by(entries.c.row_id).limit(10)).all()
        if ids:
            conflicts.append((step.table, [int(i) for i in ids]))
    return conflicts


def undo(journal: Journal, metadata: sa.MetaData, run_id: str) -> int:
    """Restore what ``run_id`` changed, step by step in reverse, through ``journal``."""
    if journal.dialect == "postgresql":
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
                column.name: sa.select(image_field(entries.c.before, column, dialect))
                .where(mine, entries.c.row_id == pk).scalar_subquery()
                for column in target.c if column is not pk
            }
            total += journal.update(target, values, pk.in_(touched))
        else:
            restored = sa.select(*(image_field(entries.c.before, column, dialect)
                                   for column in target.c)).where(mine)
            total += journal.insert(target, [c.name for c in target.c], restored)
    return total


def _table(metadata: sa.MetaData, name: str) -> sa.Table:
    table = metadata.tables.get(name)
    if table is None:
        raise Refused(f"table {name} recorded in the journal no longer exists")
    return table
