"""The one place that builds engines, opens transactions, takes locks and reflects the schema."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from igny8ctl.config import Settings
from igny8ctl.dialects import Dialect, dialect_named, dialect_of
from igny8ctl.errors import (
    ConfigError,
    DatabaseUnavailable,
    LockBusy,
    LockHolder,
    SchemaMismatch,
)
from igny8ctl.outputs import protect
from igny8ctl.redact import mask_url, redact, register_secret, split_url
from igny8ctl.tables import (
    AccountTable,
    ClusterTable,
    KeywordTable,
    MappedTable,
    PlanTable,
    SettingsTable,
    SiteTable,
    UserTable,
)

_SCHEME_ALIASES = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql+psycopg2": "postgresql+psycopg",
    "pgsql": "postgresql+psycopg",
    "sqlite": "sqlite",
}


def normalize_url(raw: str) -> sa.URL:
    """Accept the URLs Django users write (``postgres://``, ``postgresql://``, ``sqlite:///``).

    The URL is split by ``igny8ctl.redact.split_url``, so a password with an unencoded
    ``/``, ``@``, ``#``, ``%`` or space means what the operator typed, and it is registered
    as a secret before anything can print it.
    """
    parts = split_url(raw)
    if parts is None:
        raise ConfigError(f"malformed database URL {mask_url(raw)!r}: expected scheme://...",
                          key="database_url")
    for secret in parts.secrets:
        register_secret(secret)
    driver = _SCHEME_ALIASES.get(parts.scheme.lower())
    if driver is None:
        raise ConfigError(f"unsupported database URL scheme {parts.scheme[:40]!r}: use "
                          "postgresql:// or sqlite:///", key="database_url")
    if driver == "sqlite":
        database = raw.partition("://")[2].partition("?")[0]
        if not database.startswith("/") or database in ("/", "/:memory:"):
            raise ConfigError("a SQLite URL must name a file: sqlite:///path/to/db.sqlite3",
                              key="database_url")
        return sa.URL.create("sqlite", database=database[1:])
    query = dict(parts.query)
    password = parts.password if parts.password is not None else query.pop("password", None)
    try:
        host, port = _host_port(parts.hostport)
        return sa.URL.create(driver, username=parts.username or None, password=password,
                             host=host, port=port,
                             database=parts.path.lstrip("/") or None, query=query)
    except (sa_exc.ArgumentError, ValueError, TypeError):
        raise ConfigError(f"malformed database URL {mask_url(raw)!r}",
                          key="database_url") from None


def _host_port(hostport: str) -> tuple[str | None, int | None]:
    if hostport.startswith("["):
        host, bracket, rest = hostport[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(hostport)
        port_text = rest[1:]
    else:
        host, _, port_text = hostport.partition(":")
    port = int(port_text) if port_text else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(port)
    return host or None, port


def display_url(url: sa.URL) -> str:
    """The URL without its password, whether in the userinfo or the query string."""
    return mask_url(url.render_as_string(hide_password=False))


def create_engine(settings: Settings) -> Engine:
    url = normalize_url(settings.require_url())
    dialect = dialect_named(url.get_backend_name())
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        if not Path(url.database).is_file():
            raise DatabaseUnavailable(f"SQLite database file {url.database} does not exist")
        protect(Path(url.database))
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    else:
        engine = sa.create_engine(
            url, poolclass=sa.pool.NullPool,
            connect_args={"connect_timeout": 10, "application_name": "igny8ctl"})
    dialect.configure_engine(engine)
    return engine


# -- errors ------------------------------------------------------------------------------

#: SQLSTATE -> what happened, for errors whose server text could quote data.
_INTEGRITY = {
    "23502": "a NOT NULL constraint",
    "23503": "a foreign key",
    "23505": "a unique constraint",
    "23514": "a check constraint",
    "23P01": "an exclusion constraint",
}


@contextmanager
def database_errors(engine: Engine | None = None, during: str | None = None,
                    statement_timeout_ms: int | None = None) -> Iterator[None]:
    """Turn driver errors into one-line ``DatabaseUnavailable`` errors.

    The message is built from the error's structure (SQLSTATE, constraint, table, column),
    never from its text where that could hold row contents or bound parameters.
    ``during`` names the check or step, so a statement timeout says what it cancelled.
    """
    try:
        yield
    except sa_exc.DBAPIError as error:
        raise describe_db_error(error, engine, during, statement_timeout_ms) from None


def describe_db_error(error: sa_exc.DBAPIError, engine: Engine | None = None,
                      during: str | None = None,
                      statement_timeout_ms: int | None = None) -> DatabaseUnavailable:
    original = error.orig
    sqlstate: str | None = getattr(original, "sqlstate", None)
    diag = getattr(original, "diag", None)
    constraint = getattr(diag, "constraint_name", None)
    table = getattr(diag, "table_name", None)
    column = getattr(diag, "column_name", None)
    primary = getattr(diag, "message_primary", None)
    where = f" ({display_url(engine.url)})" if engine is not None else ""
    context = f" during {during}" if during else ""
    if sqlstate in _INTEGRITY:
        names = ", ".join(part for part in (
            f"constraint {constraint}" if constraint else "",
            f"table {table}" if table else "", f"column {column}" if column else "") if part)
        text = f"a write violates {_INTEGRITY[sqlstate]}" + (f" ({names})" if names else "")
    elif sqlstate == "57014":
        bound = (f" ({statement_timeout_ms} ms)" if statement_timeout_ms is not None else "")
        text = (f"statement cancelled by statement_timeout{bound}; raise statement_timeout_ms "
                "in igny8ctl.toml (or the flag) and run again")
    elif sqlstate is not None and sqlstate.startswith("22"):
        text = "the database rejected a value"
    elif primary:
        text = primary
    else:
        lines = [line.strip() for line in str(original or error).splitlines() if line.strip()]
        text = lines[0] if lines else type(original or error).__name__
    text = redact(" ".join(text.split()))
    connection_failed = error.connection_invalidated or (
        sqlstate is None and isinstance(error, sa_exc.OperationalError)
        and ("connection" in text.lower() or "could not" in text.lower()))
    if engine is not None:
        text += dialect_of(engine).error_hint(original)
    if connection_failed or (sqlstate or "").startswith(("08", "28", "3D")):
        message = f"cannot connect to the database: {text}{where}"
    else:
        state = f" [SQLSTATE {sqlstate}]" if sqlstate else ""
        message = f"database error{context}: {text}{state}{where}"
    return DatabaseUnavailable(message, sqlstate=sqlstate, constraint=constraint,
                               table=table, during=during)


# -- connections and transactions -------------------------------------------------------


@contextmanager
def connect(engine: Engine) -> Iterator[Connection]:
    with database_errors(engine), engine.connect() as connection:
        yield connection


@contextmanager
def read_only(engine: Engine, settings: Settings) -> Iterator[Connection]:
    """One consistent, read-only snapshot: checks can never write, even by mistake."""
    with connect(engine) as connection:
        transaction = connection.begin()
        try:
            dialect_of(connection).begin_read_only(connection, settings.statement_timeout_ms)
            yield connection
        finally:
            transaction.rollback()


@contextmanager
def write_transaction(connection: Connection, settings: Settings,
                      lock_timeout: bool = False) -> Iterator[Connection]:
    """A writer's transaction, bounded by the configured timeouts; commits on success."""
    dialect = dialect_of(connection)
    dialect.prepare_write(connection)
    with connection.begin():
        dialect.set_timeouts(connection, settings.statement_timeout_ms,
                             settings.lock_timeout_ms if lock_timeout else None)
        yield connection


@contextmanager
def job_lock(engine: Engine, name: str, wait_seconds: float = 0) -> Iterator[None]:
    """Hold a lock named ``name`` for the whole job so overlapping runs never collide."""
    with dialect_of(engine).job_lock(engine, name, wait_seconds):
        yield


def acquire(attempt: Callable[[], bool], name: str, wait_seconds: float,
            holders: Callable[[], Sequence[LockHolder]] = tuple) -> None:
    """Call ``attempt`` until it takes the lock or ``wait_seconds`` pass (then ``LockBusy``,
    naming the sessions that hold it where the database can say)."""
    deadline = time.monotonic() + wait_seconds
    while not attempt():
        if time.monotonic() >= deadline:
            held_by = tuple(holders())
            by = f" ({'; '.join(h.describe() for h in held_by)})" if held_by else ""
            raise LockBusy(
                f"another igny8ctl run holds the {name!r} lock{by}; try again later"
                + ("" if wait_seconds else " or pass --wait SECONDS"), lock=name,
                holders=held_by)
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


# -- schema ------------------------------------------------------------------------------

T = TypeVar("T", bound=MappedTable)


@dataclass
class Igny8Schema:
    """The reflected database, with igny8's tables resolved through the configured mapping.

    Each table is resolved on first use, so a database missing a table only fails the
    commands that need it, with a message naming the table and the key that maps it.
    """

    metadata: sa.MetaData
    mapping: Settings
    dialect: Dialect

    def resolve(self, kind: type[T]) -> T:
        name = self.mapping.table_name(kind.logical)
        table = self.metadata.tables.get(name)
        if table is None:
            raise SchemaMismatch(
                f"table {name} does not exist (map it with tables.{kind.logical} in "
                "igny8ctl.toml)", table=name, key=f"tables.{kind.logical}")
        columns: dict[str, sa.Column[Any]] = {}
        for logical_column in kind.logical_columns():
            actual = self.mapping.column_name(kind.logical, logical_column)
            if actual not in table.c:
                raise SchemaMismatch(
                    f"table {name} has no column {actual} (map it with "
                    f"columns.{kind.logical}.{logical_column} in igny8ctl.toml)",
                    table=name, column=actual, key=f"columns.{kind.logical}.{logical_column}")
            columns[logical_column] = table.c[actual]
        return kind(table, columns)

    @cached_property
    def plan(self) -> PlanTable:
        return self.resolve(PlanTable)

    @cached_property
    def account(self) -> AccountTable:
        return self.resolve(AccountTable)

    @cached_property
    def user(self) -> UserTable:
        return self.resolve(UserTable)

    @cached_property
    def site(self) -> SiteTable:
        return self.resolve(SiteTable)

    @cached_property
    def cluster(self) -> ClusterTable:
        return self.resolve(ClusterTable)

    @cached_property
    def keyword(self) -> KeywordTable:
        return self.resolve(KeywordTable)

    @cached_property
    def settings(self) -> SettingsTable:
        return self.resolve(SettingsTable)

    @property
    def tenant_column(self) -> str:
        return self.mapping.column_name("keyword", "account_id")

    def tenant_tables(self) -> list[sa.Table]:
        """Tables whose rows belong to a tenant: those that carry the tenant column."""
        return [
            table for table in self._tables()
            if self.tenant_column in table.c and not table.name.startswith("igny8ctl_")
        ]

    def _tables(self) -> list[sa.Table]:
        return sorted(self.metadata.tables.values(), key=lambda table: table.name)

    def references_to(self, target: sa.Table) -> list[sa.ForeignKey]:
        """Every foreign key in the database that points at ``target``."""
        return [
            fk for table in self._tables() for fk in table.foreign_keys
            if fk.column.table is target
        ]


def reflect(connection: Connection, settings: Settings) -> Igny8Schema:
    """Tables with their columns, primary keys and foreign keys, in three catalog reads.

    ``MetaData.reflect`` also reads indexes, unique and check constraints and comments,
    which igny8ctl never uses and which cost several times as much. Only single-column
    foreign keys are kept: they are Django's, and cascades and cross-tenant links follow
    them; a composite tenant key (``igny8ctl migrate``) pairs ``account_id`` with a parent's
    ``account_id`` and must not read as a reference of its own. ``igny8ctl.catalog`` reads
    those keys from the catalog.
    """
    metadata = sa.MetaData()
    with database_errors(connection.engine, during="reading the schema",
                         statement_timeout_ms=settings.statement_timeout_ms), \
            warnings.catch_warnings():
        # NOT VALID constraints carry options SQLAlchemy does not model; they are read
        # from the catalog directly (igny8ctl.catalog).
        warnings.simplefilter("ignore", sa_exc.SAWarning)
        inspector = sa.inspect(connection)
        columns = inspector.get_multi_columns()
        primary_keys = inspector.get_multi_pk_constraint()
        foreign_keys = dialect_of(connection).foreign_keys(connection)
    for key, reflected in sorted(columns.items(), key=lambda item: item[0][1]):
        schema, name = key
        primary_key = primary_keys.get(key)
        pk_columns = primary_key["constrained_columns"] if primary_key else []
        sa.Table(name, metadata, *(
            sa.Column(
                column["name"], column["type"], nullable=column["nullable"],
                primary_key=column["name"] in pk_columns,
                server_default=(sa.DefaultClause(sa.text(default))
                                if (default := column.get("default")) is not None else None),
                autoincrement=bool(column.get("identity") or column.get("autoincrement")),
            )
            for column in reflected
        ), schema=schema)
    for key, constraints in foreign_keys.items():
        table = metadata.tables[_key(key[0], key[1])]
        for fk in constraints:
            if len(fk["constrained_columns"]) != 1:
                continue
            referred = metadata.tables.get(_key(fk.get("referred_schema"), fk["referred_table"]))
            if referred is None or not set(fk["referred_columns"]) <= set(referred.c.keys()):
                continue
            # Column objects, not "table.column" strings: names may hold dots or quotes.
            table.append_constraint(sa.ForeignKeyConstraint(
                fk["constrained_columns"], [referred.c[c] for c in fk["referred_columns"]],
                name=fk.get("name"),
            ))
    return Igny8Schema(metadata, settings, dialect_of(connection))


def _key(schema: str | None, name: str) -> str:
    return name if schema is None else f"{schema}.{name}"
