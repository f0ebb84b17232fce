"""Check results over time: ``check --record`` stores them, ``check history`` reads them."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.report import CheckReport
from igny8ctl.tool_tables import ensure_tables, new_run_id

TABLE = "igny8ctl_check_runs"


def check_runs_table() -> sa.Table:
    return sa.Table(
        TABLE, sa.MetaData(),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("check_id", sa.String(100), nullable=False),
        sa.Column("code", sa.String(255), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Index("igny8ctl_check_runs_check", "check_id", "recorded_at"),
    )


def record(connection: Connection, report: CheckReport) -> str:
    """Store one row per finding of ``report`` (in the caller's transaction)."""
    table = check_runs_table()
    ensure_tables(connection, table)
    run_id = new_run_id(report.started_at)
    rows = [
        {"run_id": run_id, "recorded_at": report.started_at, "check_id": f.check,
         "code": f.code, "severity": f.severity.value, "count": f.count,
         "duration_ms": round(result.duration_s * 1000, 1)}
        for result in report.results for f in result.findings
    ]
    if rows:
        connection.execute(sa.insert(table), rows)
    return run_id


@dataclass(frozen=True)
class CheckHistory:
    """What ``check history`` prints."""

    KIND: ClassVar[str] = "check.history"

    trends: tuple[Trend, ...]


@dataclass(frozen=True)
class Trend:
    check: str
    code: str
    severity: str
    points: tuple[tuple[datetime, int], ...]

    @property
    def latest(self) -> int:
        return self.points[-1][1] if self.points else 0


def trends(connection: Connection, checks: Collection[str] | None = None,
           runs: int = 30) -> list[Trend]:
    """Counts per check and code over the last ``runs`` recorded runs, oldest first."""
    if not sa.inspect(connection).has_table(TABLE):
        return []
    table = check_runs_table()
    recent = (sa.select(table.c.run_id).group_by(table.c.run_id)
              .order_by(sa.func.max(table.c.recorded_at).desc()).limit(runs))
    query = (sa.select(table.c.check_id, table.c.code, table.c.severity, table.c.recorded_at,
                       table.c["count"].label("found"))
             .where(table.c.run_id.in_(recent))
             .order_by(table.c.check_id, table.c.code, table.c.recorded_at, table.c.id))
    if checks is not None:
        query = query.where(table.c.check_id.in_(sorted(checks)))
    grouped: dict[tuple[str, str], list[tuple[datetime, int]]] = {}
    severities: dict[tuple[str, str], str] = {}
    for row in connection.execute(query):
        key = (row.check_id, row.code)
        moment = row.recorded_at if row.recorded_at.tzinfo else row.recorded_at.replace(
            tzinfo=UTC)
        grouped.setdefault(key, []).append((moment, int(row.found)))
        severities[key] = row.severity
    return [Trend(check_id, code, severities[check_id, code], tuple(points))
            for (check_id, code), points in grouped.items()]
