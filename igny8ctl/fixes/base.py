"""What a fix is: a list of set-based operations that can be previewed or executed.

The same ``Operation`` objects are counted for the preview and executed through the
journal for ``--apply``, so what is shown is what is done.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.config import Settings
from igny8ctl.db import Igny8Schema
from igny8ctl.fixes.params import FixParams
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


class NewAccount(NamedTuple):
    """An account create-account will insert: for ``owner_id``, with this slug and name
    (a tuple: a plan holds one per orphan, and a frozen dataclass costs 1 µs each)."""

    owner_id: int
    slug: str
    name: str


@dataclass(frozen=True)
class Plan:
    """Everything a fix's write needs, resolved read-only: the exact target ids (rows of
    ``table``), a digest of each target's watched values and one of them all
    (``fingerprint``), the accounts to create, what each statement changes. Apply executes
    this and nothing else; a saved plan is refused if a digest no longer matches."""

    KIND: ClassVar[str] = "fix.plan"

    fix: str
    params: FixParams
    table: str
    targets: tuple[int, ...]
    digests: tuple[str, ...]
    fingerprint: str
    changes: tuple[Change, ...]
    accounts: tuple[NewAccount, ...] = ()
    joins: tuple[tuple[int, int], ...] = ()
    blockers: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    sample_limit: int = 10

    @property
    def empty(self) -> bool:
        return not self.targets or not any(c.count for c in self.changes)


@dataclass(frozen=True)
class FixResult:
    """What an apply did. ``skipped`` are planned targets that no longer qualified when
    their turn came (changed by someone else): left exactly as the app wrote them."""

    KIND: ClassVar[str] = "fix.result"

    plan: Plan
    run_id: str | None
    rows_changed: int
    batches: int
    remaining: int
    skipped: tuple[int, ...] = ()
    checks: tuple[tuple[str, int], ...] = ()


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
    ``operations`` are its statements, restricted to the planned targets that still
    qualify, so a large repair can run in batches that each commit on their own.
    """

    name: ClassVar[str]
    check: ClassVar[str]
    finding_codes: ClassVar[tuple[str, ...] | None] = None
    #: Checks reading the tables the fix writes: all run again after apply.
    rechecks: ClassVar[tuple[str, ...]] = ()

    def __init__(self, schema: Igny8Schema, settings: Settings, now: datetime,
                 params: FixParams) -> None:
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
    def operations(self, targets: sa.ColumnElement[bool], plan: Plan) -> list[Operation]:
        """The statements that repair the target rows matching ``targets`` as ``plan``
        binds them."""

    def watched(self) -> list[sa.Column[Any]]:
        """The target's columns a plan depends on: a change to any makes a saved plan stale."""
        return list(self.root.c)

    def details(self) -> list[sa.ColumnElement[Any]]:
        """Labelled values of each target that ``bind`` needs, read in the same pass as the
        targets."""
        return []

    def lookups(self, targets: sa.Subquery) -> list[sa.ColumnElement[Any]]:
        """Values ``bind`` needs that depend on ``details`` (``targets`` has the columns
        ``id``, ``digest`` and the details): each detail is computed once per target."""
        return []

    def bind(self, connection: Connection, rows: Sequence[Sequence[Any]]
             ) -> tuple[tuple[NewAccount, ...], tuple[tuple[int, int], ...]]:
        """What the write needs beyond the ids (accounts to create, accounts to join), from
        the targets' rows: id, digest, ``details``, then ``lookups``."""
        return (), ()

    def still_planned(self, plan: Plan) -> sa.ColumnElement[bool]:
        """Beyond the target condition, what must still hold of a target for its planned
        statements to be right (e.g. its planned slug still free)."""
        return sa.true()

    def changes(self, connection: Connection, targets: sa.ColumnElement[bool],
                plan: Plan) -> tuple[Change, ...]:
        """What each statement will change, counted with the statements themselves."""
        return tuple(op.preview(connection, plan.sample_limit)
                     for op in self.operations(targets, plan))

    def tables(self) -> set[str]:
        """Tables the fix writes: the re-check after apply runs every check that reads one."""
        return {self.root.name}

    def resolve(self, connection: Connection) -> None:
        """Look up what the parameters name (an account, a plan, a value for a column): a
        usage error if any does not exist, whether or not there is anything to repair."""
        return None

    def prepare(self, connection: Connection) -> list[str]:
        """Look up what the operations need; return reasons the fix cannot apply as asked."""
        return []

    def notes(self, connection: Connection) -> list[str]:
        return []


def utcnow() -> datetime:
    return datetime.now(UTC)


__all__ = ["DELETE", "INSERT", "UPDATE", "Change", "Fix", "FixResult", "NewAccount",
           "Operation", "Plan"]
