"""The interface every database igny8ctl supports implements."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.sql.compiler import SQLCompiler

    from igny8ctl.catalog import AccountColumnState, Constraint


def quote_identifier(name: str) -> str:
    """An identifier as SQL text, quoted whatever it holds (both databases double ``"``)."""
    return '"' + name.replace('"', '""') + '"'


_BIND_SAFE: dict[type[SQLCompiler], type[SQLCompiler]] = {}


def bind_safe(compiler: type[SQLCompiler]) -> type[SQLCompiler]:
    """``compiler`` with control characters escaped in bind names too: SQLAlchemy names a
    parameter after its column and escapes a space or a colon there, not a newline, which
    would break the placeholder (and the statement) for a column whose name holds one."""
    if compiler not in _BIND_SAFE:
        escapes = {**compiler.bindname_escape_characters,
                   **{chr(code): "_" for code in (*range(32), 127)}}
        _BIND_SAFE[compiler] = type(compiler.__name__, (compiler,),
                                    {"bindname_escape_characters": escapes})
    return _BIND_SAFE[compiler]


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a named lock."""
    return int.from_bytes(hashlib.sha256(f"igny8ctl:{name}".encode()).digest()[:8], "big",
                          signed=True)


class Dialect(ABC):
    """One database's way of doing what igny8ctl needs."""

    name: ClassVar[str]
    #: Data-modifying CTEs with RETURNING: journal a statement in the same statement.
    writes_in_ctes: ClassVar[bool]
    #: Row locks exist (``FOR UPDATE``); without them the write transaction is exclusive.
    row_locks: ClassVar[bool]
    #: What to add when saying a foreign key is valid.
    foreign_key_note: ClassVar[str] = ""
    #: ``ALTER TABLE`` adds and validates constraints in place, each step in a transaction of
    #: its own (PostgreSQL); without it a migration rebuilds the table, in one transaction.
    alters_constraints: ClassVar[bool]

    def quote(self, name: str) -> str:
        return quote_identifier(name)

    def qualified(self, table: sa.Table) -> str:
        prefix = f"{self.quote(table.schema)}." if table.schema else ""
        return prefix + self.quote(table.name)

    @abstractmethod
    def configure_engine(self, engine: Engine) -> None:
        """Hook connection setup into a new engine."""

    @abstractmethod
    def begin_read_only(self, connection: Connection, statement_timeout_ms: int) -> None:
        """Make the current transaction one read-only snapshot."""

    @abstractmethod
    def prepare_write(self, connection: Connection) -> None:
        """Make the next transaction of ``connection`` a writer's (call before it begins)."""

    @abstractmethod
    def set_timeouts(self, connection: Connection, statement_timeout_ms: int,
                     lock_timeout_ms: int | None = None) -> None:
        """Bound the current transaction's statements and lock waits."""

    @abstractmethod
    def json_text(self, column: sa.ColumnElement[Any], key: str) -> sa.ColumnElement[str]:
        """One top-level key of a JSON column, as text."""

    @abstractmethod
    def image_type(self) -> sa.types.TypeEngine[Any]:
        """The column type of journal row images."""

    @abstractmethod
    def row_image(self, table: sa.FromClause,
                  columns: Sequence[sa.ColumnElement[Any]] | None = None
                  ) -> sa.ColumnElement[Any]:
        """The whole row of ``table`` as one JSON object, or only ``columns`` of it."""

    @abstractmethod
    def digest(self, values: Sequence[sa.ColumnElement[Any]]) -> sa.ColumnElement[str]:
        """A hex digest of ``values`` that changes when any of them does."""

    @abstractmethod
    def row_digest(self, connection: Connection, table: sa.Table) -> sa.ColumnElement[str]:
        """A digest of the whole row (for "changed since": the row itself is not kept).

        Of its values, not of its version (``xmin``): a row version misses a write the
        same transaction makes later (a trigger), and it changes when an undo puts the
        values back, which would refuse undoing two runs in reverse order."""

    def recorded_row_digest(self, connection: Connection, table: sa.Table,
                            recorded: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
        """The row's digest in the form ``recorded`` was written in (a journal keeps
        digests of every form igny8ctl has written)."""
        return self.row_digest(connection, table)

    @abstractmethod
    def among(self, column: sa.ColumnElement[Any], ids: Sequence[int]) -> sa.ColumnElement[bool]:
        """``column`` is one of ``ids``, given as one bound value whatever their number."""

    @abstractmethod
    def value_rows(self, rows: Sequence[Sequence[Any]],
                   columns: Sequence[tuple[str, sa.types.TypeEngine[Any]]]) -> sa.Subquery:
        """``rows`` (each a sequence of values in ``columns`` order; values beyond them are
        not sent; each an ``int`` or ``str`` as its column is, never ``None``) as a typed
        subquery named ``planned``: a plan's ids and values reach SQL as data, in bound
        values whose number does not grow with the rows'."""

    @abstractmethod
    def check_constraints_now(self, connection: Connection) -> None:
        """Run the transaction's deferred constraint checks now, not at commit (where a
        violation could no longer be reported as a refusal)."""

    @abstractmethod
    def analyze(self, connection: Connection, table: sa.Table) -> None:
        """Refresh the planner's statistics of ``table`` (a journal just written)."""

    @abstractmethod
    def image_field(self, image: sa.ColumnElement[Any],
                    column: sa.Column[Any]) -> sa.ColumnElement[Any]:
        """One field of a row image, cast back to ``column``'s own type."""

    @abstractmethod
    def same_image(self, left: sa.ColumnElement[Any],
                   right: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        """Two row images hold the same values (NULL-safe)."""

    @abstractmethod
    def slugify_sql(self, text: sa.ColumnElement[Any],
                    max_length: int) -> sa.ColumnElement[str]:
        """``igny8ctl.slug.slugify`` computed by the database."""

    def error_hint(self, error: BaseException | None) -> str:
        """What the operator can do about a driver error, when the error alone does not say."""
        return ""

    def stored_time(self, moment: datetime) -> datetime:
        """A timestamp as this database's Django columns store it."""
        return moment

    @abstractmethod
    def lock_rows(self, query: sa.Select[Any],
                  of: sa.FromClause | None = None) -> sa.Select[Any]:
        """``query`` taking row locks on what it reads (``FOR UPDATE``) where they exist."""

    @abstractmethod
    def xact_lock(self, connection: Connection, name: str) -> None:
        """Serialise the rest of the transaction with others taking the same name."""

    @abstractmethod
    def job_lock(self, engine: Engine, name: str,
                 wait_seconds: float) -> AbstractContextManager[None]:
        """Hold ``name`` for a whole job; ``LockBusy`` if another run has it."""

    @abstractmethod
    def account_column(self, connection: Connection, user: sa.Table, column: str,
                       account: sa.Table) -> AccountColumnState:
        """What the database itself enforces on ``user.column`` (NOT NULL, keys, checks)."""

    @abstractmethod
    def prepare_migration(self, dbapi_connection: Any) -> None:
        """Set up a driver connection for a migration, before any transaction begins."""

    @abstractmethod
    def foreign_keys(self, connection: Connection) -> dict[tuple[str | None, str],
                                                          list[dict[str, Any]]]:
        """Every foreign key of the default schema's tables, keyed and shaped as
        ``Inspector.get_multi_foreign_keys`` returns them."""

    @abstractmethod
    def unique_keys(self, connection: Connection, table: sa.Table,
                    columns: tuple[str, ...]) -> tuple[Constraint, ...]:
        """Unique indexes or constraints of ``table`` on exactly ``columns`` (in any order)
        that a foreign key can reference; ``validated`` is False for an INVALID index left
        by an interrupted concurrent build."""

    @abstractmethod
    def composite_foreign_keys(self, connection: Connection, child: sa.Table,
                               columns: tuple[str, ...], parent: sa.Table,
                               parent_columns: tuple[str, ...]) -> tuple[Constraint, ...]:
        """Foreign keys of ``child`` on exactly ``columns`` referencing ``parent_columns``."""

