"""SQLite: one writer at a time, file locks, JSON text, ``PRAGMA`` catalog reads."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from igny8ctl.catalog import AccountColumnState, Constraint
from igny8ctl.dialects.base import Dialect, bind_safe
from igny8ctl.errors import ConfigError
from igny8ctl.slug import SQLITE_FUNCTION, slugify

#: The connection option that makes the next BEGIN take the write lock at once.
IMMEDIATE = "igny8ctl_immediate"
#: The SQL function computing ``Dialect.digest`` (PostgreSQL has ``md5``).
DIGEST_FUNCTION = "igny8ctl_digest"


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy issue BEGIN itself so transactions (and their locks) are real.
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA foreign_keys = ON")
    dbapi_connection.execute("PRAGMA busy_timeout = 5000")
    dbapi_connection.create_function(SQLITE_FUNCTION, 2, slugify, deterministic=True)
    dbapi_connection.create_function(DIGEST_FUNCTION, 1, _digest, deterministic=True)


def _digest(text: str | None) -> str | None:
    return None if text is None else hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _on_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(IMMEDIATE)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _foreign_keys(connection: Connection, table: str) -> list[Any]:
    """The keys of ``table``: columns from PRAGMA foreign_key_list, names parsed from the
    table's SQL by SQLAlchemy (a quote in a column name can defeat that parse, which only
    costs the name)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        return list(sa.inspect(connection).get_foreign_keys(table))


class SQLite(Dialect):
    name: ClassVar[str] = "sqlite"
    writes_in_ctes: ClassVar[bool] = False
    row_locks: ClassVar[bool] = False
    foreign_key_note: ClassVar[str] = " (enforced only where PRAGMA foreign_keys is on)"
    alters_constraints: ClassVar[bool] = False

    def configure_engine(self, engine: Engine) -> None:
        engine.dialect.statement_compiler = bind_safe(engine.dialect.statement_compiler)
        sa.event.listen(engine, "connect", _on_connect)
        sa.event.listen(engine, "begin", _on_begin)

    def begin_read_only(self, connection: Connection, statement_timeout_ms: int) -> None:
        connection.exec_driver_sql("PRAGMA query_only = ON")

    def prepare_write(self, connection: Connection) -> None:
        """BEGIN IMMEDIATE: take the database's write lock before the first read, so what a
        writer reads stays true until it commits."""
        connection.execution_options(**{IMMEDIATE: True})

    def set_timeouts(self, connection: Connection, statement_timeout_ms: int,
                     lock_timeout_ms: int | None = None) -> None:
        """SQLite has no statement timeout; ``busy_timeout`` bounds lock waits."""

    def json_text(self, column: sa.ColumnElement[Any], key: str) -> sa.ColumnElement[str]:
        path = '$."' + key.replace('"', '\\"') + '"'
        return sa.func.json_extract(column, path, type_=sa.String)

    def image_type(self) -> sa.types.TypeEngine[Any]:
        return sa.Text()

    def row_image(self, table: sa.FromClause,
                  columns: Sequence[sa.ColumnElement[Any]] | None = None
                  ) -> sa.ColumnElement[Any]:
        pairs: list[Any] = []
        for column in (table.c if columns is None else columns):
            pairs += [sa.literal(column.name), column]
        return sa.func.json_object(*pairs)

    def digest(self, values: Sequence[sa.ColumnElement[Any]]) -> sa.ColumnElement[str]:
        digest: sa.ColumnElement[str] = getattr(sa.func, DIGEST_FUNCTION)(
            sa.func.json_array(*values), type_=sa.String)
        return digest

    def row_digest(self, connection: Connection, table: sa.Table) -> sa.ColumnElement[str]:
        digest: sa.ColumnElement[str] = getattr(sa.func, DIGEST_FUNCTION)(
            self.row_image(table), type_=sa.String)
        return digest

    def among(self, column: sa.ColumnElement[Any], ids: Sequence[int]) -> sa.ColumnElement[bool]:
        planned = self.value_rows([(int(i),) for i in ids], [("id", sa.BigInteger())])
        return column.in_(sa.select(planned.c.id))

    def value_rows(self, rows: Sequence[Sequence[Any]],
                   columns: Sequence[tuple[str, sa.types.TypeEngine[Any]]]) -> sa.Subquery:
        """One JSON parameter, a list of rows, each a list of the columns' values."""
        document = json.dumps([row[:len(columns)] for row in rows])
        each = sa.func.json_each(sa.literal(document, sa.Text)).table_valued("value")
        return sa.select(*(
            sa.type_coerce(sa.func.json_extract(each.c.value, f"$[{number}]"), kind).label(name)
            for number, (name, kind) in enumerate(columns))).subquery("planned")

    def image_field(self, image: sa.ColumnElement[Any],
                    column: sa.Column[Any]) -> sa.ColumnElement[Any]:
        path = '$."' + column.name.replace('"', '\\"') + '"'
        return sa.type_coerce(sa.func.json_extract(image, path), column.type)

    def same_image(self, left: sa.ColumnElement[Any],
                   right: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        return sa.func.json(left).is_not_distinct_from(sa.func.json(right))

    def slugify_sql(self, text: sa.ColumnElement[Any],
                    max_length: int) -> sa.ColumnElement[str]:
        slug: sa.ColumnElement[str] = getattr(sa.func, SQLITE_FUNCTION)(
            text, max_length, type_=sa.String)
        return slug

    def check_constraints_now(self, connection: Connection) -> None:
        """SQLite checks deferred keys only at commit: a violation there rolls everything
        back and is a database error (exit 3)."""

    def analyze(self, connection: Connection, table: sa.Table) -> None:
        """SQLite plans these joins by primary key whatever its statistics say."""

    def error_hint(self, error: BaseException | None) -> str:
        name = getattr(error, "sqlite_errorname", "")
        if name.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY")):
            return ("; SQLite writes a journal file beside the database: is its directory "
                    "writable?")
        return ""

    def stored_time(self, moment: datetime) -> datetime:
        return moment.replace(tzinfo=None)

    def lock_rows(self, query: sa.Select[Any],
                  of: sa.FromClause | None = None) -> sa.Select[Any]:
        return query

    def xact_lock(self, connection: Connection, name: str) -> None:
        """A write transaction already excludes every other writer."""

    @contextmanager
    def job_lock(self, engine: Engine, name: str, wait_seconds: float) -> Iterator[None]:
        """An ``flock`` on a file beside the database."""
        from igny8ctl.db import acquire

        database = engine.url.database or "igny8ctl"
        path = f"{database}.igny8ctl-{name.replace('/', '_')}.lock"
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise ConfigError(f"cannot create the lock file {path} beside the SQLite database: "
                              f"{error.strerror}; igny8ctl writes need a writable directory",
                              key="database_url") from None
        try:
            def try_flock() -> bool:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            acquire(try_flock, name, wait_seconds)
            yield
        finally:
            os.close(descriptor)

    def prepare_migration(self, dbapi_connection: Any) -> None:
        """A table rebuild must not fire foreign keys, and SQLite ignores this PRAGMA inside
        a transaction: it is set on the driver before SQLAlchemy begins one."""
        dbapi_connection.execute("PRAGMA foreign_keys = OFF")

    def account_column(self, connection: Connection, user: sa.Table, column: str,
                       account: sa.Table) -> AccountColumnState:
        inspector = sa.inspect(connection)
        not_null = any(c["name"] == column and not c["nullable"]
                       for c in inspector.get_columns(user.name))
        keys = tuple(
            Constraint(fk["name"] or "(unnamed)", True)
            for fk in _foreign_keys(connection, user.name)
            if fk["constrained_columns"] == [column] and fk["referred_table"] == account.name
        )
        return AccountColumnState(not_null, (), keys)

    def foreign_keys(self, connection: Connection) -> dict[tuple[str | None, str],
                                                          list[dict[str, Any]]]:
        """SQLAlchemy reads SQLite's keys with ``PRAGMA foreign_key_list``: names are data."""
        return dict(sa.inspect(connection).get_multi_foreign_keys())

    def unique_keys(self, connection: Connection, table: sa.Table,
                    columns: tuple[str, ...]) -> tuple[Constraint, ...]:
        """Unique indexes, inline UNIQUE constraints included (SQLite has no INVALID ones)."""
        wanted = sorted(columns)
        found = []
        for index in connection.exec_driver_sql(
                f"PRAGMA index_list({self.quote(table.name)})").mappings():
            if not index["unique"] or index["partial"]:
                continue
            info = connection.exec_driver_sql(
                f"PRAGMA index_info({self.quote(index['name'])})").mappings().all()
            names = [row["name"] for row in info]
            if None not in names and sorted(names) == wanted:
                found.append(Constraint(str(index["name"]), True))
        return tuple(sorted(found, key=lambda c: c.name))

    def composite_foreign_keys(self, connection: Connection, child: sa.Table,
                               columns: tuple[str, ...], parent: sa.Table,
                               parent_columns: tuple[str, ...]) -> tuple[Constraint, ...]:
        return tuple(
            Constraint(fk["name"] or "(unnamed)", True)
            for fk in _foreign_keys(connection, child.name)
            if tuple(fk["constrained_columns"]) == columns
            and fk["referred_table"] == parent.name
            and tuple(fk["referred_columns"]) == parent_columns
        )
