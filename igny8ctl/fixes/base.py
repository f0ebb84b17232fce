"""What a fix is: a list of set-based operations that can be previewed or executed.

The same ``Operation`` objects are counted for the preview and executed through the
journal for ``--apply``, so what is shown is what is done.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.config import Settings
from igny8ctl.db import Igny8Schema
from igny8ctl.journal.tables import DELETE, INSERT, UPDATE, primary_key
from igny8ctl.journal.writer import Journal
from igny8ctl.tables import MappedTable


@dataclass(frozen=True)
class Change:
    """One line of a plan: what a statement will do, to how many rows, and to which."""

    action: str
    table: str
    count: int
    sample: tuple[int, ...]
    description: str


@dataclass(frozen=True)
class Plan:
    fix: str
    params: Mapping[str, Any]
    targets: int
    changes: tuple[Change, ...]
    blockers: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self.targets == 0 or not any(c.count for c in self.changes)


@dataclass(frozen=True)
class FixResult:
    plan: Plan
    run_id: str | None
    rows_changed: int
    batches: int
    remaining: int


@dataclass(frozen=True)
class Operation:
    """One set-based statement of a fix."""

    action: str
    table: sa.Table
    description: str
    where: sa.ColumnElement[bool] | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    columns: Sequence[str] = ()
    source: sa.Select[Any] | None = None

    def preview(self, connection: Connection, sample_limit: int) -> Change:
        if self.action == INSERT:
            assert self.source is not None
            rows = self.source.subquery("source")
            key = next(iter(rows.c))
        else:
            assert self.where is not None
            rows = sa.select(primary_key(self.table).label("id")).where(self.where).subquery()
            key = rows.c.id
        count = int(connection.scalar(sa.select(sa.func.count()).select_from(rows)) or 0)
        sample = tuple(int(i) for i in connection.scalars(
            sa.select(key).order_by(key).limit(sample_limit)).all()) if count else ()
        return Change(self.action, self.table.name, count, sample, self.description)

    def execute(self, journal: Journal) -> int:
        if self.action == INSERT:
            assert self.source is not None
            return journal.insert(self.table, self.columns, self.source)
        assert self.where is not None
        if self.action == UPDATE:
            return journal.update(self.table, self.values, self.where)
        return journal.delete(self.table, self.where)


class Fix(ABC):
    """Base of every fix. ``targets`` are the root rows it repairs (users, accounts...);
    ``operations`` are its statements, restricted to targets with ``id <= upto`` so a
    large repair can run in batches that each commit on their own.
    """

    name: ClassVar[str]
    check: ClassVar[str]
    finding_codes: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, schema: Igny8Schema, settings: Settings, now: datetime,
                 params: Mapping[str, Any]) -> None:
        self.schema = schema
        self.settings = settings
        self.now = schema.dialect.stored_time(now)
        self.params = params

    @property
    def root(self) -> sa.Table:
        table: sa.Table = self.target_table().table
        return table

    @abstractmethod
    def target_table(self) -> MappedTable:
        """The MappedTable whose rows are the targets."""

    @abstractmethod
    def target_condition(self) -> sa.ColumnElement[bool]:
        """Which rows of the target table this fix repairs."""

    @abstractmethod
    def operations(self, targets: sa.ColumnElement[bool]) -> list[Operation]:
        """The statements that repair the target rows matching ``targets``."""

    def prepare(self, connection: Connection) -> list[str]:
        """Look up what the operations need; return reasons the fix cannot apply as asked."""
        return []

    def notes(self, connection: Connection) -> list[str]:
        return []

    def window(self, upto: int | None) -> sa.ColumnElement[bool]:
        condition = self.target_condition()
        if upto is not None:
            condition = sa.and_(condition, primary_key(self.root) <= upto)
        return condition


def utcnow() -> datetime:
    return datetime.now(UTC)


__all__ = ["DELETE", "INSERT", "UPDATE", "Change", "Fix", "FixResult", "Operation", "Plan"]
