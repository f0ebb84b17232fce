"""What every revision's recipe is made of: steps, their runs, the timeout policy, and names.

A recipe plans steps from the catalog; an executor (``postgresql`` runs statements, each
step in a transaction of its own; ``sqlite`` rebuilds tables) runs them. Names from the
configuration reach SQL only through the dialect's ``quote``, string literals only through
``literal``, and dollar-quoted blocks only through ``dollar_quoted``.
"""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from igny8ctl.errors import ConfigError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from igny8ctl.config import Settings
    from igny8ctl.db import Igny8Schema
    from igny8ctl.errors import Igny8Error

ACCESS_EXCLUSIVE = "AccessExclusiveLock"
SHARE_ROW_EXCLUSIVE = "ShareRowExclusiveLock"
SHARE_UPDATE_EXCLUSIVE = "ShareUpdateExclusiveLock"
ROW_SHARE = "RowShareLock"

#: PostgreSQL's identifier limit, in bytes (NAMEDATALEN - 1).
MAX_NAME_BYTES = 63


@dataclass(frozen=True)
class ForeignKeySpec:
    """A foreign key a table rebuild adds or drops (SQLite)."""

    name: str
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]


@dataclass(frozen=True)
class Rebuild:
    """A SQLite table rebuild: what changes in the copy, all else kept."""

    table: str
    nullable: tuple[tuple[str, bool], ...] = ()
    add_foreign_keys: tuple[ForeignKeySpec, ...] = ()
    drop_foreign_keys: tuple[ForeignKeySpec, ...] = ()


@dataclass(frozen=True)
class Step:
    """One unit of the recipe: its statements and the table locks they take.

    A transactional step runs in a transaction of its own under ``SET LOCAL`` timeouts;
    one that is not (``CREATE INDEX CONCURRENTLY``) runs statement by statement. A step with
    a ``rebuild`` rebuilds a SQLite table after its statements.
    """

    key: str
    title: str
    statements: tuple[str, ...]
    locks: tuple[tuple[str, str], ...] = ()
    transactional: bool = True
    rebuild: Rebuild | None = None


@dataclass(frozen=True)
class StepRun:
    revision: str
    key: str
    title: str
    attempts: int
    duration_s: float


@dataclass(frozen=True)
class Policy:
    """Timeouts and retries of every DDL statement; backoff doubles, with jitter, per attempt."""

    lock_timeout_ms: int
    statement_timeout_ms: int
    attempts: int
    backoff_s: float = 0.5
    max_backoff_s: float = 10.0

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        if settings.lock_timeout_ms <= 0:
            raise ConfigError("lock_timeout_ms must be positive for migrate: without it a "
                              "waiting ALTER TABLE stalls every writer behind it",
                              key="lock_timeout_ms")
        if settings.statement_timeout_ms <= settings.lock_timeout_ms:
            raise ConfigError(
                f"statement_timeout_ms ({settings.statement_timeout_ms}) must be above "
                f"lock_timeout_ms ({settings.lock_timeout_ms})", key="statement_timeout_ms")
        if settings.lock_retries < 1:
            raise ConfigError("lock_retries must be at least 1 (it counts attempts)",
                              key="lock_retries")
        return cls(settings.lock_timeout_ms, settings.statement_timeout_ms, settings.lock_retries)

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Offline:
    """A revision as a script: checks that refuse before any DDL, then the steps."""

    preflight: tuple[str, ...]
    steps: tuple[Step, ...]


class Stopped(Exception):
    """Ends a run after ``max_steps`` steps, before Alembic records the revision."""

    def __init__(self, revision: str, remaining: int) -> None:
        super().__init__(f"stopped with {remaining} step(s) of {revision} left")
        self.revision = revision
        self.remaining = remaining


class Recipe(ABC):
    """One revision: it reads the catalog, plans what is missing, and refuses bad data.

    Every plan is computed from the catalog right before each step, so a run interrupted at
    any point resumes where it stopped, and a database that drifted is repaired.
    """

    #: The name operators use (``--to``); ``igny8ctl.migrations.REVISIONS`` maps it to its id.
    name: ClassVar[str]
    #: What ``downgrade`` takes away, for its confirmation prompt.
    weakens: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abstractmethod
    def plan(self, connection: sa.Connection, schema: Igny8Schema) -> tuple[Step, ...]:
        """The steps still needed, given what the catalog shows done."""

    @abstractmethod
    def downgrade_plan(self, connection: sa.Connection,
                       schema: Igny8Schema) -> tuple[Step, ...]:
        """The steps that take the revision away again."""

    @abstractmethod
    def preflight(self, connection: sa.Connection, schema: Igny8Schema) -> Igny8Error | None:
        """Why the data cannot take the revision yet, naming the fix for each defect."""

    @abstractmethod
    def offline(self) -> Offline:
        """The upgrade as a script: SQL guards stand in for the catalog reads."""

    @abstractmethod
    def violated(self, step: Step, sqlstate: str | None) -> Igny8Error | None:
        """A step failed on a row written after the preflight: what to repair."""


# -- names ---------------------------------------------------------------------------------


def django_name(table: str, columns: list[str], suffix: str, max_length: int = 63) -> str:
    """Django's ``BaseDatabaseSchemaEditor._create_index_name``, so Django recognises our names."""
    digest = hashlib.md5(usedforsecurity=False)
    for part in (table, *columns):
        digest.update(part.encode())
    hash_suffix = digest.hexdigest()[:8] + suffix
    name = f"{table}_{'_'.join(columns)}_{hash_suffix}"
    if len(name) <= max_length:
        return name
    if len(hash_suffix) > max_length / 3:
        hash_suffix = hash_suffix[: max_length // 3]
    other = (max_length - len(hash_suffix)) // 2 - 1
    name = f"{table[:other]}_{'_'.join(columns)[:other]}_{hash_suffix}"
    if name[0] == "_" or name[0].isdigit():
        name = "D" + name[:-1]
    return name


def own_name(table: str, columns: list[str], suffix: str) -> str:
    """Django's naming with a suffix Django never uses, kept within PostgreSQL's 63 *bytes*
    (Django counts characters, and PostgreSQL would cut a longer name silently)."""
    for limit in range(MAX_NAME_BYTES, 0, -1):
        name = django_name(table, columns, suffix, limit)
        if len(name.encode()) <= MAX_NAME_BYTES:
            return name
    raise AssertionError("unreachable: a name of one character fits")


# -- SQL text --------------------------------------------------------------------------------


def literal(text: str) -> str:
    """A SQL string literal (``standard_conforming_strings``: only quotes are special)."""
    return "'" + text.replace("'", "''") + "'"


def dollar_quoted(body: str, tag: str = "igny8ctl") -> str:
    """``body`` between dollar quotes whose tag it does not contain, so no name ends the block."""
    while f"${tag}$" in body:
        tag += "_"
    return f"${tag}$\n{body}\n${tag}$"


def raise_exception(message: str) -> str:
    """PL/pgSQL's RAISE with ``message`` as data: RAISE reads ``%`` in its format string."""
    return f"RAISE EXCEPTION '%', {literal(message)}"


def do_block(body: str) -> str:
    return "DO " + dollar_quoted(body)


def run_sql(connection: sa.Connection, statement: str) -> sa.CursorResult[Any]:
    """Execute SQL text that holds names: without a parameter collection, so the driver
    never reads a ``%`` or ``?`` in a quoted name as a placeholder."""
    return connection.exec_driver_sql(statement, execution_options={"no_parameters": True})


CHECK_VIOLATION = "23514"
FOREIGN_KEY_VIOLATION = "23503"
LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"
