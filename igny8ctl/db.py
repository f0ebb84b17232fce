"""The one place that builds engines, opens transactions, takes locks and reflects the schema."""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from igny8ctl.config import SCHEMA, Settings
from igny8ctl.errors import ConfigError, DatabaseUnavailable, LockBusy, SchemaMismatch
from igny8ctl.redact import redact
from igny8ctl.slug import SQLITE_FUNCTION, slugify

_SCHEME_ALIASES = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql+psycopg2": "postgresql+psycopg",
    "pgsql": "postgresql+psycopg",
    "sqlite": "sqlite",
}


def normalize_url(raw: str) -> sa.URL:
    """Accept the URLs Django users write (``postgres://``, ``postgresql://``, ``sqlite:///``)."""
    scheme, sep, _ = raw.partition("://")
    if not sep:
        raise ConfigError(f"malformed database URL {redact(raw)!r}: expected scheme://...")
    driver = _SCHEME_ALIASES.get(scheme.lower())
    if driver is None:
        raise ConfigError(
            f"unsupported database URL scheme {scheme!r}: use postgresql:// or sqlite:///"
        )
    try:
        url = sa.make_url(driver + raw[len(scheme):])
        _ = url.port
    except (sa_exc.ArgumentError, ValueError):
        raise ConfigError(f"malformed database URL {redact(raw)!r}") from None
    if driver == "sqlite" and url.database in (None, "", ":memory:"):
        raise ConfigError("a SQLite URL must name a file: sqlite:///path/to/db.sqlite3")
    return url


def display_url(url: sa.URL) -> str:
    """The URL without its password, whether in the userinfo or the query string."""
    return redact(url.render_as_string(hide_password=True))


def create_engine(settings: Settings) -> Engine:
    url = normalize_url(settings.require_url())
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        if not Path(url.database).exists():
            raise DatabaseUnavailable(f"SQLite database file {url.database} does not exist")
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return sa.create_engine(
        url,
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": 10, "application_name": "igny8ctl"},
    )


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy issue BEGIN itself so transactions (and their locks) are real.
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA foreign_keys = ON")
    dbapi_connection.execute("PRAGMA busy_timeout = 5000")
    dbapi_connection.create_function(SQLITE_FUNCTION, 2, slugify, deterministic=True)


def _sqlite_on_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")


def is_postgres(bind: Connection | Engine) -> bool:
    return bind.dialect.name == "postgresql"


@contextmanager
def database_errors(engine: Engine | None = None) -> Iterator[None]:
    """Turn driver errors into one-line ``DatabaseUnavailable`` errors with secrets masked."""
    try:
        yield
    except sa_exc.DBAPIError as error:
        where = f" ({display_url(engine.url)})" if engine is not None else ""
        raise DatabaseUnavailable(describe_db_error(error) + where) from None


def describe_db_error(error: sa_exc.DBAPIError) -> str:
    original = error.orig if error.orig is not None else error
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    text = " ".join(lines[:2]) if lines else type(original).__name__
    if error.connection_invalidated or (isinstance(error, sa_exc.OperationalError) and (
        "connection" in text.lower() or "could not" in text.lower()
    )):
        return "cannot connect to the database: " + redact(text)
    return "database error: " + redact(text)


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
            if is_postgres(connection):
                connection.exec_driver_sql(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                )
                set_timeouts(connection, settings.statement_timeout_ms)
            else:
                connection.exec_driver_sql("PRAGMA query_only = ON")
            yield connection
        finally:
            transaction.rollback()


def set_timeouts(
    connection: Connection, statement_timeout_ms: int, lock_timeout_ms: int | None = None
) -> None:
    if not is_postgres(connection):
        return
    connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
    # igny8ctl's statements are short set-based passes; JIT compilation costs more than it
    # saves on them.
    connection.exec_driver_sql("SET LOCAL jit = off")
    if lock_timeout_ms is not None:
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")


def json_text(column: sa.ColumnElement[Any], key: str, dialect: str) -> sa.ColumnElement[str]:
    """``config->>'key'`` on PostgreSQL, ``json_extract`` on SQLite."""
    if dialect == "postgresql":
        return column.op("->>", return_type=sa.String)(sa.literal(key, sa.String))
    return sa.func.json_extract(column, f"$.{key}", type_=sa.String)


# -- locks -------------------------------------------------------------------------------


@contextmanager
def job_lock(engine: Engine, name: str, wait_seconds: float = 0) -> Iterator[None]:
    """Hold a lock named ``name`` for the whole job so overlapping runs never collide.

    PostgreSQL: a session advisory lock on a dedicated connection. SQLite: an ``flock`` on
    a file beside the database.
    """
    if engine.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"igny8ctl:{name}".encode()).digest()[:8], "big",
                             signed=True)
        with connect(engine) as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            _acquire(lambda: bool(connection.scalar(
                sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key})), name, wait_seconds)
            try:
                yield
            finally:
                connection.scalar(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return
    database = engine.url.database or "igny8ctl"
    path = f"{database}.igny8ctl-{name.replace('/', '_')}.lock"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        def try_flock() -> bool:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        _acquire(try_flock, name, wait_seconds)
        yield
    finally:
        os.close(descriptor)


def _acquire(attempt: Any, name: str, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while not attempt():
        if time.monotonic() >= deadline:
            raise LockBusy(
                f"another igny8ctl run holds the {name!r} lock; try again later"
                + ("" if wait_seconds else " or pass --wait SECONDS")
            )
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


# -- schema ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MappedTable:
    """A reflected igny8 table whose columns are reached by their logical names."""

    logical: str
    table: sa.Table
    columns: Mapping[str, sa.Column[Any]]

    def __getattr__(self, logical_column: str) -> sa.Column[Any]:
        try:
            return self.columns[logical_column]
        except KeyError:
            raise AttributeError(logical_column) from None

    @property
    def pk(self) -> sa.Column[Any]:
        return self.columns["id"]


@dataclass
class Igny8Schema:
    """The reflected database, with igny8's tables resolved through the configured mapping."""

    metadata: sa.MetaData
    mapping: Settings
    dialect: str
    _mapped: dict[str, MappedTable] = field(default_factory=dict)

    def __getattr__(self, logical: str) -> MappedTable:
        if logical.startswith("_") or logical not in SCHEMA:
            raise AttributeError(logical)
        return self.require(logical)

    def require(self, logical: str) -> MappedTable:
        if logical in self._mapped:
            return self._mapped[logical]
        name = self.mapping.table_name(logical)
        table = self.metadata.tables.get(name)
        if table is None:
            raise SchemaMismatch(
                f"table {name} does not exist (map it with tables.{logical} in igny8ctl.toml)"
            )
        columns: dict[str, sa.Column[Any]] = {}
        for logical_column in SCHEMA[logical][1]:
            actual = self.mapping.column_name(logical, logical_column)
            if actual not in table.c:
                raise SchemaMismatch(
                    f"table {name} has no column {actual} "
                    f"(map it with columns.{logical}.{logical_column} in igny8ctl.toml)"
                )
            columns[logical_column] = table.c[actual]
        mapped = MappedTable(logical, table, columns)
        self._mapped[logical] = mapped
        return mapped

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
    which igny8ctl never uses and which cost several times as much.
    """
    metadata = sa.MetaData()
    with database_errors(), warnings.catch_warnings():
        # NOT VALID constraints carry options SQLAlchemy does not model; they are read
        # from the catalog directly (igny8ctl.catalog).
        warnings.simplefilter("ignore", sa_exc.SAWarning)
        inspector = sa.inspect(connection)
        columns = inspector.get_multi_columns()
        primary_keys = inspector.get_multi_pk_constraint()
        foreign_keys = inspector.get_multi_foreign_keys()
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
        table = metadata.tables[key[1] if key[0] is None else f"{key[0]}.{key[1]}"]
        for fk in constraints:
            prefix = f"{fk['referred_schema']}." if fk.get("referred_schema") else ""
            table.append_constraint(sa.ForeignKeyConstraint(
                fk["constrained_columns"],
                [f"{prefix}{fk['referred_table']}.{c}" for c in fk["referred_columns"]],
                name=fk.get("name"),
            ))
    return Igny8Schema(metadata, settings, connection.dialect.name)
