"""What a check is, what it returns, and the SQL shape every check shares."""

from __future__ import annotations

import functools
import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.catalog import AccountColumnState, account_column_state
from igny8ctl.config import Settings
from igny8ctl.db import Igny8Schema
from igny8ctl.dialects import Dialect


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]


@dataclass(frozen=True)
class Finding:
    """One kind of defect found by a check: how many rows, and which (a sample)."""

    check: str
    code: str
    severity: Severity
    count: int
    sample: tuple[int, ...]
    message: str
    baselined: bool = False

    @property
    def key(self) -> str:
        return f"{self.check}:{self.code}"


@dataclass(frozen=True)
class CheckInfo:
    id: str
    title: str
    severity: Severity
    rationale: str
    fix: str | None
    tenant_scoped: bool = True


@dataclass(frozen=True)
class CheckResult:
    info: CheckInfo
    findings: tuple[Finding, ...]
    duration_s: float
    detail: str | None = None

    @property
    def count(self) -> int:
        return sum(f.count for f in self.findings if f.severity is not Severity.INFO)

    def worst(self, include_baselined: bool = False) -> Severity | None:
        relevant = [
            f.severity for f in self.findings
            if f.count and (include_baselined or not f.baselined)
        ]
        return max(relevant, key=lambda s: s.rank) if relevant else None


@dataclass(frozen=True)
class Outcome:
    findings: list[Finding]
    detail: str | None = None


@dataclass
class CheckContext:
    connection: Connection
    schema: Igny8Schema
    settings: Settings
    sample_limit: int
    #: Account ids a tenant-scoped run is restricted to (``check --tenant``, doctor).
    tenants: tuple[int, ...] | None = None

    @property
    def dialect(self) -> Dialect:
        return self.schema.dialect

    def restrict(self, query: sa.Select[Any],
                 account_id: sa.ColumnElement[Any]) -> sa.Select[Any]:
        """``query`` limited to rows whose ``account_id`` is a selected tenant's, if any.

        Checks apply it to their root table; the filter goes through the index on
        ``account_id``, so a scoped run costs what the tenants' rows cost.
        """
        return query if self.tenants is None else query.where(account_id.in_(self.tenants))

    @functools.cached_property
    def account_column(self) -> AccountColumnState:
        """What the database enforces on user.account_id; read once for both schema checks."""
        return account_column_state(self.connection, self.schema)

    def count_and_sample(self, ids: sa.Select[Any]) -> tuple[int, tuple[int, ...]]:
        """Count the rows of ``ids`` (one id column) and take the lowest few, in one pass.

        The rows are found once (in parallel where PostgreSQL can); counting them with a
        window over the result costs less than finding them a second time for the sample.
        """
        if self.sample_limit <= 0:
            return int(self.connection.scalar(
                sa.select(sa.func.count()).select_from(ids.subquery("counted"))) or 0), ()
        bad = ids.offset(0).subquery("bad")
        id_column = next(iter(bad.c))
        rows = self.connection.execute(
            sa.select(id_column, sa.func.count().over().label("total"))
            .order_by(id_column).limit(self.sample_limit)).all()
        return (int(rows[0].total) if rows else 0), tuple(int(row[0]) for row in rows)

    def count_each(self, source: sa.FromClause,
                   conditions: Sequence[sa.ColumnElement[bool]]) -> list[int]:
        """How many rows of ``source`` meet each condition, in a single pass over it."""
        row = self.connection.execute(sa.select(
            *(sa.func.count().filter(condition) for condition in conditions)
        ).select_from(source)).one()
        return [int(count) for count in row]

    def sample(self, ids: sa.Select[Any]) -> tuple[int, ...]:
        """The lowest ``sample_limit`` ids of ``ids``."""
        if self.sample_limit <= 0:
            return ()
        # OFFSET 0 keeps the planner from walking the primary key in order to satisfy
        # the LIMIT, which is slow when matches are rare.
        bad = ids.offset(0).subquery("bad")
        id_column = next(iter(bad.c))
        sample = self.connection.scalars(
            sa.select(id_column).order_by(id_column).limit(self.sample_limit)).all()
        return tuple(int(i) for i in sample)


class Check(ABC):
    """Base of every check. The docstring of a subclass is its rationale (``check --list``).

    A check reads with set-based SQL and never writes; it returns findings, with a count
    even when zero, so a clean run is visible as such.
    """

    id: ClassVar[str]
    title: ClassVar[str]
    severity: ClassVar[Severity]
    fix: ClassVar[str | None] = None
    #: Whether the check's rows belong to tenants (``check --tenant`` restricts it to them).
    tenant_scoped: ClassVar[bool] = True

    @classmethod
    def info(cls) -> CheckInfo:
        return CheckInfo(cls.id, cls.title, cls.severity, inspect.cleandoc(cls.__doc__ or ""),
                         cls.fix, cls.tenant_scoped)

    @abstractmethod
    def run(self, context: CheckContext) -> Outcome:
        """Return this check's findings."""

    def finding(
        self, code: str, count: int, sample: tuple[int, ...], message: str,
        severity: Severity | None = None,
    ) -> Finding:
        return Finding(self.id, code, severity or self.severity, count, sample, message)


def run_check(check: type[Check], context: CheckContext) -> CheckResult:
    """Run one check and time it."""
    started = time.perf_counter()
    outcome = check().run(context)
    return CheckResult(check.info(), tuple(outcome.findings), time.perf_counter() - started,
                       outcome.detail)
