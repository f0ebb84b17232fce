"""Exit codes and the exceptions that carry them, with the data their messages are made of.

Only the top-level handler in ``igny8ctl.cli.main`` turns these into output and an exit
code (one stderr line, or a JSON error object with ``--format json``); the core raises
them and never prints. No other module spells an exit code as a number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import Any, ClassVar


class ExitCode(IntEnum):
    OK = 0
    FINDINGS = 1
    USAGE = 2
    DATABASE = 3
    LOCKED = 4
    INTERRUPTED = 130


class Igny8Error(Exception):
    """An error an operator can meet and act on: one line, one exit code, and its data.

    ``details`` holds what the message was made from (a config key, a lock and its
    holders, the table and ids refused, a SQLSTATE and constraint), so the JSON error
    object carries it as fields rather than prose. Row contents never go in it.
    """

    exit_code: ClassVar[ExitCode] = ExitCode.USAGE
    kind: ClassVar[str] = "usage"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = {key: value for key, value in details.items() if value is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.kind, "message": self.message,
                "exit_code": int(self.exit_code), **self.details}


class ConfigError(Igny8Error):
    """Missing or invalid configuration, flags or input files; ``key`` names the culprit."""

    def __init__(self, message: str, key: str | None = None, **details: Any) -> None:
        super().__init__(message, key=key, **details)
        self.key = key


class Refused(Igny8Error):
    """The tool declined to act because the data is not in a state it can act on.

    ``rows`` maps each table to the ids that made it refuse (all of them, for JSON).
    """

    exit_code = ExitCode.FINDINGS
    kind = "refused"

    def __init__(self, message: str, rows: Mapping[str, Sequence[int]] | None = None,
                 **details: Any) -> None:
        clean = {table: [int(i) for i in ids] for table, ids in (rows or {}).items()}
        super().__init__(message, rows=clean or None, **details)
        self.rows = clean


class DatabaseUnavailable(Igny8Error):
    """The database could not be reached, or a statement against it failed.

    ``sqlstate``, ``constraint``, ``table`` and ``columns`` say which, never the row.
    """

    exit_code = ExitCode.DATABASE
    kind = "database"

    def __init__(self, message: str, sqlstate: str | None = None,
                 constraint: str | None = None, table: str | None = None,
                 **details: Any) -> None:
        super().__init__(message, sqlstate=sqlstate, constraint=constraint, table=table,
                         **details)
        self.sqlstate = sqlstate
        self.constraint = constraint
        self.table = table


class SchemaMismatch(Igny8Error):
    """The database does not have a table or column the configuration names."""

    exit_code = ExitCode.DATABASE
    kind = "schema"

    def __init__(self, message: str, table: str | None = None, column: str | None = None,
                 key: str | None = None) -> None:
        super().__init__(message, table=table, column=column, key=key)
        self.table = table
        self.column = column
        self.key = key


@dataclass(frozen=True)
class LockHolder:
    """A session holding a lock someone waits for: enough to find it, never its data.

    ``command`` is the first word of its current or last statement (``UPDATE``), not the
    statement: its text can carry the application's values.
    """

    pid: int | None
    application: str = ""
    state: str = ""
    age_s: float | None = None
    command: str = ""

    def describe(self) -> str:
        if self.pid is None:
            return self.application or "another process"
        age = f" for {self.age_s:.0f}s" if self.age_s is not None else ""
        what = f", last statement {self.command}" if self.command else ""
        return (f"pid {self.pid} ({self.application or 'no application_name'}, "
                f"{self.state or 'unknown state'}{age}{what})")


class LockBusy(Igny8Error):
    """Another run holds the lock for the same job, or a table lock could not be had."""

    exit_code = ExitCode.LOCKED
    kind = "locked"

    def __init__(self, message: str, lock: str | None = None,
                 holders: Sequence[LockHolder] = (), **details: Any) -> None:
        super().__init__(message, lock=lock,
                         holders=[asdict(h) for h in holders] or None, **details)
        self.lock = lock
        self.holders = tuple(holders)


class Interrupted(Igny8Error):
    """Ctrl-C or SIGTERM: committed work stays, the open transaction rolled back."""

    exit_code = ExitCode.INTERRUPTED
    kind = "interrupted"
