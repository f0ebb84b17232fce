"""Exit codes and the exceptions that carry them.

Only the top-level handler in ``igny8ctl.cli.main`` turns these into a message and an
exit code; the core raises them and never prints.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FINDINGS = 1
    USAGE = 2
    DATABASE = 3
    LOCKED = 4


class Igny8Error(Exception):
    """An error an operator can meet and act on: one line, one exit code."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(Igny8Error):
    """Missing or invalid configuration, flags or input files."""


class Refused(Igny8Error):
    """The tool declined to act because the data is not in a state it can act on."""

    exit_code = ExitCode.FINDINGS


class DatabaseUnavailable(Igny8Error):
    """The database could not be reached, or a statement against it failed."""

    exit_code = ExitCode.DATABASE


class SchemaMismatch(Igny8Error):
    """The database does not have a table or column the configuration names."""

    exit_code = ExitCode.DATABASE


class LockBusy(Igny8Error):
    """Another igny8ctl run holds the lock for the same job."""

    exit_code = ExitCode.LOCKED
