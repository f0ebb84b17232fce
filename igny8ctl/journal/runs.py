"""Journaled runs: their identity when they start, and their summaries when read back."""

from __future__ import annotations

import getpass
import json
import os
import shlex
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.dialects import dialect_of
from igny8ctl.errors import ConfigError
from igny8ctl.journal.tables import RUN_ID_LENGTH, RUNS_TABLE, journal_tables
from igny8ctl.redact import MASK, mask_url, redact
from igny8ctl.tool_tables import new_run_id


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
            run_id=new_run_id(now),
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
            option, equals, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
            if "://" in value:
                value = mask_url(value)
            shown.append(redact(option + equals + value))
    return shlex.join(["igny8ctl", *shown])


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


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
    runs, _ = journal_tables(dialect_of(connection))
    if not sa.inspect(connection).has_table(RUNS_TABLE):
        return []
    query = sa.select(runs).order_by(runs.c.started_at.desc(), runs.c.run_id.desc()).limit(limit)
    if job:
        query = query.where(runs.c.job == job)
    return [_summary(row) for row in connection.execute(query).mappings()]


def get_run(connection: Connection, run_id: str) -> RunSummary:
    if len(run_id) > RUN_ID_LENGTH:
        raise ConfigError(f"{run_id[:24]!r}… is not a run id: run ids have at most "
                          f"{RUN_ID_LENGTH} characters (see igny8ctl fix history)", key="RUN_ID")
    runs, _ = journal_tables(dialect_of(connection))
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
