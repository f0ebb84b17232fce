"""How the revision makes ``user.account_id`` NOT NULL without stalling a live database.

PostgreSQL: add ``CHECK (col IS NOT NULL) NOT VALID`` (a catalog change); ``VALIDATE`` it in
its own transaction (SHARE UPDATE EXCLUSIVE: writers keep going); then ``SET NOT NULL``, which
PostgreSQL 12+ proves from the validated check instead of scanning, and ``DROP CONSTRAINT`` of
the check, as two statements of one transaction (one ALTER TABLE with both actions would scan
under ACCESS EXCLUSIVE). A missing foreign key is added ``NOT VALID`` and validated the same
way. Each step runs in its own transaction under ``lock_timeout`` and ``statement_timeout``, is
retried with backoff when the lock times out, and is chosen by reading the catalog right
before it runs, so an interrupted run resumes where it stopped.

SQLite: one table rebuild in Alembic's batch mode, restoring what SQLite's reflection forgets
(deferrable foreign keys, inline UNIQUE, AUTOINCREMENT and its sequence).
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.base import PGDialect

from igny8ctl.catalog import AccountColumnState, account_column_state
from igny8ctl.checks.base import CheckContext
from igny8ctl.checks.users_dangling_account import UsersDanglingAccount
from igny8ctl.checks.users_orphaned import UsersOrphaned
from igny8ctl.config import Settings
from igny8ctl.db import Igny8Schema, reflect
from igny8ctl.dialects import dialect_of
from igny8ctl.errors import ConfigError, DatabaseUnavailable, LockBusy, Refused
from igny8ctl.migrations import MAX_STEPS, SETTINGS, STEP_LOG

LOCK_NOT_AVAILABLE = "55P03"
_CHECK_VIOLATION = "23514"
_FOREIGN_KEY_VIOLATION = "23503"
_QUERY_CANCELED = "57014"

ACCESS_EXCLUSIVE = "AccessExclusiveLock"
SHARE_ROW_EXCLUSIVE = "ShareRowExclusiveLock"
SHARE_UPDATE_EXCLUSIVE = "ShareUpdateExclusiveLock"
ROW_SHARE = "RowShareLock"

#: PostgreSQL's table-level lock modes, weakest first, and the modes each conflicts with.
_MODES = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock",
          "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
CONFLICTS: dict[str, frozenset[str]] = {
    "AccessShareLock": frozenset(_MODES[7:]),
    "RowShareLock": frozenset(_MODES[6:]),
    "RowExclusiveLock": frozenset(_MODES[4:]),
    "ShareUpdateExclusiveLock": frozenset(_MODES[3:]),
    "ShareLock": frozenset((_MODES[2], _MODES[3], *_MODES[5:])),
    "ShareRowExclusiveLock": frozenset(_MODES[2:]),
    "ExclusiveLock": frozenset(_MODES[1:]),
    "AccessExclusiveLock": frozenset(_MODES),
}

_PG = PGDialect()  # type: ignore[no-untyped-call]


def quote(name: str) -> str:
    return _PG.identifier_preparer.quote(name)


def _sqlite_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


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


@dataclass(frozen=True)
class Target:
    """The tables and columns the migration acts on, resolved through the Settings mapping."""

    user_table: str
    column: str
    account_table: str
    account_pk: str

    @classmethod
    def of(cls, settings: Settings) -> Target:
        return cls(settings.table_name("user"), settings.column_name("user", "account_id"),
                   settings.table_name("account"), settings.column_name("account", "id"))

    @property
    def fk_name(self) -> str:
        """Django's name for this key (``<table>_<col>_<hash>_fk_<target>``, truncated)."""
        return django_name(self.user_table, [self.column],
                           f"_fk_{self.account_table}_{self.account_pk}")

    @property
    def check_name(self) -> str:
        return django_name(self.user_table, [self.column], "_notnull")


@dataclass(frozen=True)
class Step:
    """One transaction of the recipe: its statements and the table locks they take."""

    key: str
    title: str
    statements: tuple[str, ...]
    locks: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StepRun:
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
                              "waiting ALTER TABLE stalls every writer behind it")
        if settings.statement_timeout_ms <= settings.lock_timeout_ms:
            raise ConfigError(
                f"statement_timeout_ms ({settings.statement_timeout_ms}) must be above "
                f"lock_timeout_ms ({settings.lock_timeout_ms})")
        if settings.lock_retries < 1:
            raise ConfigError("lock_retries must be at least 1 (it counts attempts)")
        return cls(settings.lock_timeout_ms, settings.statement_timeout_ms, settings.lock_retries)

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


class Stopped(Exception):
    """Ends a run after ``max_steps`` steps, before Alembic records the revision."""

    def __init__(self, remaining: int) -> None:
        super().__init__(f"stopped with {remaining} step(s) left")
        self.remaining = remaining


# -- plans -------------------------------------------------------------------------------


def plan(state: AccountColumnState, target: Target, dialect: str) -> tuple[Step, ...]:
    """The steps still needed to enforce the column, given what the catalog shows done."""
    if dialect == "sqlite":
        if state.not_null and state.foreign_keys:
            return ()
        title = f"rebuild {target.user_table} with {target.column} NOT NULL"
        if not state.foreign_keys:
            title += " and its foreign key"
        return (Step("rebuild", title + " (batch mode)", ()),)
    user, column = quote(target.user_table), quote(target.column)
    steps: list[Step] = []
    if not state.not_null:
        check = state.validated_check or next(iter(state.not_null_checks), None)
        name = quote(check.name if check else target.check_name)
        if check is None:
            steps.append(Step(
                "check-add", f"add CHECK ({target.column} IS NOT NULL) NOT VALID",
                (f"ALTER TABLE {user} ADD CONSTRAINT {name} CHECK ({column} IS NOT NULL) "
                 "NOT VALID",),
                ((target.user_table, ACCESS_EXCLUSIVE),)))
        if check is None or not check.validated:
            steps.append(Step(
                "check-validate", "validate the check (writers keep running)",
                (f"ALTER TABLE {user} VALIDATE CONSTRAINT {name}",),
                ((target.user_table, SHARE_UPDATE_EXCLUSIVE),)))
        steps.append(Step(
            "set-not-null", f"SET NOT NULL on {target.column}, then drop the check",
            (f"ALTER TABLE {user} ALTER COLUMN {column} SET NOT NULL",
             f"ALTER TABLE {user} DROP CONSTRAINT {name}"),
            ((target.user_table, ACCESS_EXCLUSIVE),)))
    elif any(c.name == target.check_name for c in state.not_null_checks):
        steps.append(Step(
            "check-drop", "drop the check, redundant with NOT NULL",
            (f"ALTER TABLE {user} DROP CONSTRAINT {quote(target.check_name)}",),
            ((target.user_table, ACCESS_EXCLUSIVE),)))
    key = state.valid_foreign_key or next(iter(state.foreign_keys), None)
    if key is None:
        steps.append(_fk_add(target))
    if key is None or not key.validated:
        steps.append(Step(
            "fk-validate", "validate the foreign key (writers keep running)",
            (f"ALTER TABLE {user} VALIDATE CONSTRAINT "
             f"{quote(key.name if key else target.fk_name)}",),
            ((target.user_table, SHARE_UPDATE_EXCLUSIVE), (target.account_table, ROW_SHARE))))
    return tuple(steps)


def downgrade_plan(state: AccountColumnState, target: Target, dialect: str) -> tuple[Step, ...]:
    """Make the column nullable again; the foreign key stays."""
    if not state.not_null:
        return ()
    if dialect == "sqlite":
        return (Step("rebuild", f"rebuild {target.user_table} with {target.column} nullable "
                                "(batch mode)", ()),)
    return (Step(
        "drop-not-null", f"DROP NOT NULL on {target.column}",
        (f"ALTER TABLE {quote(target.user_table)} ALTER COLUMN {quote(target.column)} "
         "DROP NOT NULL",),
        ((target.user_table, ACCESS_EXCLUSIVE),)),)


def _fk_add(target: Target, statement: str | None = None) -> Step:
    return Step(
        "fk-add", "add the foreign key NOT VALID",
        (statement or _fk_add_sql(target),),
        ((target.user_table, SHARE_ROW_EXCLUSIVE), (target.account_table, SHARE_ROW_EXCLUSIVE)))


def _fk_add_sql(target: Target) -> str:
    return (f"ALTER TABLE {quote(target.user_table)} ADD CONSTRAINT {quote(target.fk_name)} "
            f"FOREIGN KEY ({quote(target.column)}) REFERENCES {quote(target.account_table)} "
            f"({quote(target.account_pk)}) DEFERRABLE INITIALLY DEFERRED NOT VALID")


def offline_steps(target: Target) -> tuple[Step, ...]:
    """The whole recipe as a script: guards in SQL stand in for the catalog reads."""
    user, column = quote(target.user_table), quote(target.column)
    account, pk = quote(target.account_table), quote(target.account_pk)
    keys = (f"SELECT c.conname FROM pg_constraint c\n"
            f"        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]\n"
            f"        WHERE c.contype = 'f' AND cardinality(c.conkey) = 1"
            f" AND c.conrelid = to_regclass({_literal(user)})\n"
            f"          AND c.confrelid = to_regclass({_literal(account)})"
            f" AND a.attname = {_literal(target.column)}")
    preflight = Step("preflight", "refuse while users without a valid account exist", ((
        "DO $igny8ctl$\nBEGIN\n"
        f"    IF EXISTS (SELECT 1 FROM {user} WHERE {column} IS NULL) THEN\n"
        f"        RAISE EXCEPTION {_literal('users without an account exist; repair them: ' + UsersOrphaned.fix)};\n"  # noqa: E501
        "    END IF;\n"
        f"    IF EXISTS (SELECT 1 FROM {user} u WHERE u.{column} IS NOT NULL AND NOT EXISTS "
        f"(SELECT 1 FROM {account} a WHERE a.{pk} = u.{column})) THEN\n"
        f"        RAISE EXCEPTION {_literal('users point at missing accounts; repair them: ' + UsersDanglingAccount.fix)};\n"  # noqa: E501
        "    END IF;\nEND\n$igny8ctl$"),))
    fk_add = _fk_add(target, (
        f"DO $igny8ctl$\nBEGIN\n    IF NOT EXISTS (\n        {keys}\n    ) THEN\n"
        f"        {_fk_add_sql(target)};\n    END IF;\nEND\n$igny8ctl$"))
    fk_validate = Step("fk-validate", "validate the foreign key (writers keep running)", ((
        f"DO $igny8ctl$\nDECLARE\n    name text;\nBEGIN\n"
        f"    FOR name IN {keys} AND NOT c.convalidated LOOP\n"
        f"        EXECUTE {_literal(f'ALTER TABLE {user} VALIDATE CONSTRAINT ')}"
        " || quote_ident(name);\n    END LOOP;\nEND\n$igny8ctl$"),),
        ((target.user_table, SHARE_UPDATE_EXCLUSIVE), (target.account_table, ROW_SHARE)))
    nullable = AccountColumnState(not_null=False, not_null_checks=(), foreign_keys=())
    checks = [step for step in plan(nullable, target, "postgresql") if step.key.startswith(
        ("check-", "set-"))]
    return (preflight, *checks, fk_add, fk_validate)


# -- preflight ---------------------------------------------------------------------------


def defect_counts(connection: sa.Connection, schema: Igny8Schema,
                  settings: Settings) -> tuple[int, int]:
    """Orphaned and dangling users: either blocks the migration."""
    context = CheckContext(connection, schema, settings, sample_limit=0)
    orphaned = sum(f.count for f in UsersOrphaned().run(context).findings)
    dangling = sum(f.count for f in UsersDanglingAccount().run(context).findings)
    return orphaned, dangling


def refusal(orphaned: int, dangling: int) -> str | None:
    parts = []
    if orphaned:
        parts.append(f"{orphaned} user(s) without an account (repair: {UsersOrphaned.fix})")
    if dangling:
        parts.append(f"{dangling} user(s) pointing at a missing account "
                     f"(repair: {UsersDanglingAccount.fix})")
    if not parts:
        return None
    return ("refusing to migrate, nothing was changed: " + " and ".join(parts)
            + "; then run igny8ctl migrate apply again")


# -- entry points of the revision --------------------------------------------------------


def upgrade(context: MigrationContext, settings: Settings | None = None) -> None:
    settings = _settings(context, settings)
    target = Target.of(settings)
    dialect = context.dialect.name
    if context.as_sql:
        if dialect != "postgresql":
            raise ConfigError("--sql is for PostgreSQL: the SQLite migration rebuilds the "
                              "table from its live definition")
        _emit(context, offline_steps(target), Policy.of(settings))
        return
    connection = _connection(context)
    schema = reflect(connection, settings)
    if not plan(account_column_state(connection, schema), target, dialect):
        return
    message = refusal(*defect_counts(connection, schema, settings))
    if message:
        raise Refused(message)
    _run(context, schema, settings, lambda state: plan(state, target, dialect), nullable=False)


def downgrade(context: MigrationContext, settings: Settings | None = None) -> None:
    settings = _settings(context, settings)
    target = Target.of(settings)
    if context.as_sql:
        _emit(context, downgrade_plan(AccountColumnState(True, (), ()), target, "postgresql"),
              Policy.of(settings))
        return
    schema = reflect(_connection(context), settings)
    dialect = context.dialect.name
    _run(context, schema, settings, lambda state: downgrade_plan(state, target, dialect),
         nullable=True)


def _run(context: MigrationContext, schema: Igny8Schema, settings: Settings,
         planner: Callable[[AccountColumnState], tuple[Step, ...]], nullable: bool) -> None:
    """Run the first pending step, re-read the catalog, repeat until nothing is pending."""
    attributes: dict[str, Any] = context.config.attributes if context.config else {}
    log: list[StepRun] | None = attributes.get(STEP_LOG)
    max_steps: int | None = attributes.get(MAX_STEPS)
    target = Target.of(settings)
    sqlite = context.dialect.name == "sqlite"
    policy = Policy.of(settings)
    done: set[str] = set()
    with _steps_context(context, sqlite):
        while True:
            state = account_column_state(_connection(context), schema)
            pending = planner(state)
            if not pending:
                return
            step = pending[0]
            if step.key in done:
                raise DatabaseUnavailable(f"step {step.title!r} ran, yet the catalog does not "
                                          "show it done; stopping rather than looping")
            if max_steps is not None and len(done) >= max_steps:
                raise Stopped(len(pending))
            if sqlite:
                started = time.perf_counter()
                _rebuild_sqlite(context, target, nullable, add_foreign_key=not state.foreign_keys)
                run = StepRun(step.key, step.title, 1, time.perf_counter() - started)
            else:
                run = execute(_connection(context), step, policy)
            done.add(step.key)
            if log is not None:
                log.append(run)


@contextmanager
def _steps_context(context: MigrationContext, sqlite: bool) -> Iterator[None]:
    """PostgreSQL steps commit one by one; SQLite's rebuild stays in the migration's transaction."""
    if sqlite:
        yield
        return
    with context.autocommit_block():
        yield


def _settings(context: MigrationContext, settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    found = context.config.attributes.get(SETTINGS) if context.config else None
    return found if isinstance(found, Settings) else Settings()


def _connection(context: MigrationContext) -> sa.Connection:
    if context.connection is None:
        raise ConfigError("the migration needs a database connection")
    return context.connection


# -- PostgreSQL execution ----------------------------------------------------------------


def execute(connection: sa.Connection, step: Step, policy: Policy) -> StepRun:
    """Run one step in its own transaction; retry it while its lock times out."""
    started = time.perf_counter()
    attempt = 1
    while True:
        try:
            with _transaction(connection):
                dialect_of(connection).set_timeouts(connection, policy.statement_timeout_ms,
                                                    policy.lock_timeout_ms)
                for statement in step.statements:
                    connection.exec_driver_sql(statement)
            return StepRun(step.key, step.title, attempt, time.perf_counter() - started)
        except sa_exc.DBAPIError as error:
            if _sqlstate(error) != LOCK_NOT_AVAILABLE:
                raise _explain(error, step, policy) from None
            if attempt >= policy.attempts:
                raise LockBusy(_gave_up(connection, step, policy)) from None
            time.sleep(policy.delay(attempt))
            attempt += 1


@contextmanager
def _transaction(connection: sa.Connection) -> Iterator[None]:
    """A real transaction on the AUTOCOMMIT connection of Alembic's autocommit block."""
    connection.exec_driver_sql("BEGIN")
    try:
        yield
    except BaseException:
        connection.exec_driver_sql("ROLLBACK")
        raise
    connection.exec_driver_sql("COMMIT")


def _sqlstate(error: sa_exc.DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


def _explain(error: sa_exc.DBAPIError, step: Step, policy: Policy) -> Exception:
    code = _sqlstate(error)
    if code == _CHECK_VIOLATION:
        return Refused(f"{step.title}: users without an account were written after the "
                       f"preflight; repair them ({UsersOrphaned.fix}) and apply again, it "
                       "resumes (the NOT VALID check already stops new ones)")
    if code == _FOREIGN_KEY_VIOLATION:
        return Refused(f"{step.title}: users pointing at a missing account were written after "
                       f"the preflight; repair them ({UsersDanglingAccount.fix}) and apply "
                       "again, it resumes")
    if code == _QUERY_CANCELED:
        return DatabaseUnavailable(
            f"{step.title}: cancelled by statement_timeout ({policy.statement_timeout_ms} ms); "
            "raise statement_timeout_ms (validation does not block writers) and apply again, "
            "it resumes")
    return error


@dataclass(frozen=True)
class Session:
    pid: int
    application: str
    state: str
    age_s: float | None
    query: str

    def describe(self) -> str:
        age = f" for {self.age_s:.0f}s" if self.age_s is not None else ""
        query = " ".join(self.query.split())
        return (f"pid {self.pid} ({self.application or 'no application_name'}, "
                f"{self.state or 'unknown state'}{age}: {query!r})")


_LOCKS = sa.table("pg_locks", sa.column("pid", sa.Integer), sa.column("locktype", sa.Text),
                  sa.column("relation"), sa.column("mode", sa.Text),
                  sa.column("granted", sa.Boolean))
_ACTIVITY = sa.table("pg_stat_activity", sa.column("pid", sa.Integer),
                     sa.column("application_name", sa.Text), sa.column("state", sa.Text),
                     sa.column("xact_start"), sa.column("query_start"),
                     sa.column("query", sa.Text))


def blocking_sessions(connection: sa.Connection,
                      locks: tuple[tuple[str, str], ...]) -> list[Session]:
    """Sessions holding a lock that conflicts with one the step needs."""
    if not locks:
        return []
    since = sa.func.coalesce(_ACTIVITY.c.xact_start, _ACTIVITY.c.query_start)
    conflicting = sa.or_(*(
        sa.and_(_LOCKS.c.relation == sa.func.to_regclass(quote(table)),
                _LOCKS.c.mode.in_(sorted(CONFLICTS[mode])))
        for table, mode in locks))
    rows = connection.execute(
        sa.select(_ACTIVITY.c.pid, _ACTIVITY.c.application_name, _ACTIVITY.c.state,
                  sa.extract("epoch", sa.func.now() - since).label("age"),
                  sa.func.left(_ACTIVITY.c.query, 60).label("query"))
        .distinct()
        .join_from(_ACTIVITY, _LOCKS, _LOCKS.c.pid == _ACTIVITY.c.pid)
        .where(_LOCKS.c.locktype == "relation", _LOCKS.c.granted,
               _LOCKS.c.pid != sa.func.pg_backend_pid(), conflicting)
        .order_by(_ACTIVITY.c.pid)
    ).all()
    return [Session(int(r.pid), r.application_name or "", r.state or "",
                    float(r.age) if r.age is not None else None, r.query or "") for r in rows]


def _gave_up(connection: sa.Connection, step: Step, policy: Policy) -> str:
    sessions = blocking_sessions(connection, step.locks)
    who = "; ".join(s.describe() for s in sessions) or "none any more (they just finished)"
    tables = ", ".join(dict.fromkeys(table for table, _ in step.locks))
    return (f"gave up on step {step.title!r} after {policy.attempts} attempt(s): no lock on "
            f"{tables} within lock_timeout {policy.lock_timeout_ms} ms; blocking sessions: "
            f"{who}; the steps done so far stay, apply again to resume")


def _emit(context: MigrationContext, steps: tuple[Step, ...], policy: Policy) -> None:
    """Offline (``--sql``): the same transactions, written out for review.

    A step without locks (the preflight) stays in Alembic's first transaction, so a refusal
    also rolls back the creation of the version table.
    """
    impl = context.impl
    for step in steps:
        if not step.locks:
            impl.static_output(f"-- igny8ctl: {step.title}\n" + ";\n".join(step.statements) + ";")
    with context.autocommit_block():
        for number, step in enumerate((s for s in steps if s.locks), 1):
            impl.static_output("\n".join((
                f"-- igny8ctl step {number}: {step.title}",
                "BEGIN;",
                f"SET LOCAL lock_timeout = {policy.lock_timeout_ms};",
                f"SET LOCAL statement_timeout = {policy.statement_timeout_ms};",
                *(statement + ";" for statement in step.statements),
                "COMMIT;",
            )))


# -- SQLite ------------------------------------------------------------------------------

_DEFERRED = re.compile(r"\bREFERENCES\b.*\bDEFERRABLE\s+INITIALLY\s+DEFERRED\b", re.I | re.S)
_FK_COLUMN = re.compile(r'\s*(?:CONSTRAINT\s+\S+\s+)?FOREIGN\s+KEY\s*\(\s*["`\[]?([^"`\]\s)]+)',
                        re.I)
_COLUMN = re.compile(r'\s*["`\[]?([^"`\]\s]+)')


def _rebuild_sqlite(context: MigrationContext, target: Target, nullable: bool,
                    add_foreign_key: bool) -> None:
    connection = _connection(context)
    if connection.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise ConfigError("SQLite's PRAGMA foreign_keys must be OFF while the table is rebuilt "
                          "(igny8ctl's Alembic environment turns it off)")
    name = target.user_table
    metadata = sa.MetaData()
    table = sa.Table(name, metadata, autoload_with=connection)
    create_sql = str(connection.scalar(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": name}) or "")
    deferred = _deferred_foreign_keys(create_sql)
    for key in table.foreign_key_constraints:
        if len(key.column_keys) == 1 and key.column_keys[0] in deferred:
            key.deferrable, key.initially = True, "DEFERRED"
    present = {tuple(c.columns.keys()) for c in table.constraints
               if isinstance(c, sa.UniqueConstraint)}
    for columns in _unique_constraints(connection, name):
        if columns not in present:
            table.append_constraint(sa.UniqueConstraint(*columns))
    if add_foreign_key:
        sa.Table(target.account_table, metadata, autoload_with=connection)
        table.append_constraint(sa.ForeignKeyConstraint(
            [target.column], [f"{target.account_table}.{target.account_pk}"],
            deferrable=True, initially="DEFERRED"))
    autoincrement = re.search(r"\bAUTOINCREMENT\b", create_sql, re.I) is not None
    sequence = connection.scalar(sa.text("SELECT seq FROM sqlite_sequence WHERE name = :name"),
                                 {"name": name}) if autoincrement else None
    with Operations(context).batch_alter_table(
        name, copy_from=table, recreate="always",
        table_kwargs={"sqlite_autoincrement": autoincrement},
    ) as batch:
        batch.alter_column(target.column, existing_type=table.c[target.column].type,
                           nullable=nullable)
    if sequence is not None:
        connection.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :name"),
                           {"name": name})
        connection.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:name, :seq)"),
                           {"name": name, "seq": sequence})
    if connection.exec_driver_sql(f"PRAGMA foreign_key_check({_sqlite_quote(name)})").first():
        raise Refused(f"{name} has rows pointing at missing rows after the rebuild; nothing was "
                      f"changed; repair them ({UsersDanglingAccount.fix}) and apply again")


def _deferred_foreign_keys(create_sql: str) -> set[str]:
    """Columns whose foreign key is DEFERRABLE INITIALLY DEFERRED (SQLite reflection drops it)."""
    body = create_sql[create_sql.find("(") + 1: create_sql.rfind(")")]
    columns: set[str] = set()
    depth, start = 0, 0
    items: list[str] = []
    for index, char in enumerate(body):
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            items.append(body[start:index])
            start = index + 1
    items.append(body[start:])
    for item in items:
        if _DEFERRED.search(item):
            match = _FK_COLUMN.match(item) or _COLUMN.match(item)
            if match:
                columns.add(match.group(1))
    return columns


def _unique_constraints(connection: sa.Connection, table: str) -> list[tuple[str, ...]]:
    """UNIQUE constraints, inline ones included (SQLite reflection misses those)."""
    found = []
    indexes = connection.exec_driver_sql(f"PRAGMA index_list({_sqlite_quote(table)})")
    for index in indexes.mappings():
        if index["origin"] == "u":
            info = connection.exec_driver_sql(
                f"PRAGMA index_info({_sqlite_quote(index['name'])})").mappings()
            found.append(tuple(str(row["name"]) for row in sorted(info, key=lambda r: r["seqno"])))
    return found
