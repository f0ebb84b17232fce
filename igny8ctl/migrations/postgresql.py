"""The PostgreSQL executor: one step at a time, bounded by timeouts, and who blocked it.

A transactional step runs in a transaction of its own with ``SET LOCAL lock_timeout`` and
``statement_timeout``; a step that cannot run in one (``CREATE INDEX CONCURRENTLY``) sets
them for the session and resets them after. While a step runs, a second session watches
whether it waits for a lock and, only then, asks ``pg_blocking_pids()`` who holds it up, so a
lock timeout names the sessions that really blocked this one, never a writer that merely
queued behind it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from igny8ctl.db import describe_db_error
from igny8ctl.errors import DatabaseUnavailable, Igny8Error, LockHolder
from igny8ctl.migrations.steps import (
    LOCK_NOT_AVAILABLE,
    QUERY_CANCELED,
    Policy,
    Recipe,
    Step,
    run_sql,
)

#: How often the watcher looks, at most; a shorter lock_timeout is sampled four times.
WATCH_INTERVAL_S = 0.1


class LockTimedOut(Exception):
    """A statement of the step waited longer than ``lock_timeout``; nothing of it stayed."""

    def __init__(self, holders: tuple[LockHolder, ...]) -> None:
        super().__init__("lock timeout")
        self.holders = holders


def backend_pid(connection: sa.Connection) -> int:
    return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def execute(connection: sa.Connection, step: Step, policy: Policy, recipe: Recipe,
            pid: int) -> float:
    """Run ``step`` once on an AUTOCOMMIT connection; its duration in seconds."""
    started = time.perf_counter()
    interval = max(0.01, min(WATCH_INTERVAL_S, policy.lock_timeout_ms / 4000))
    with BlockerWatch(connection.engine, pid, interval) as watch:
        try:
            if step.transactional:
                with _transaction(connection):
                    _timeouts(connection, policy, "SET LOCAL")
                    for statement in step.statements:
                        run_sql(connection, statement)
            else:
                _timeouts(connection, policy, "SET")
                try:
                    for statement in step.statements:
                        run_sql(connection, statement)
                finally:
                    connection.exec_driver_sql("RESET lock_timeout")
                    connection.exec_driver_sql("RESET statement_timeout")
        except sa_exc.DBAPIError as error:
            sqlstate = getattr(error.orig, "sqlstate", None)
            if sqlstate == LOCK_NOT_AVAILABLE:
                raise LockTimedOut(watch.holders()) from None
            raise explain(error, step, policy, recipe) from None
    return time.perf_counter() - started


def _timeouts(connection: sa.Connection, policy: Policy, verb: str) -> None:
    connection.exec_driver_sql(f"{verb} lock_timeout = {int(policy.lock_timeout_ms)}")
    connection.exec_driver_sql(f"{verb} statement_timeout = {int(policy.statement_timeout_ms)}")


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


def explain(error: sa_exc.DBAPIError, step: Step, policy: Policy, recipe: Recipe) -> Igny8Error:
    """A failed step as one line: the recipe's advice for a violation, else the SQLSTATE."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    advice = recipe.violated(step, sqlstate)
    if advice is not None:
        return advice
    if sqlstate == QUERY_CANCELED:
        return DatabaseUnavailable(
            f"step {step.title!r} was cancelled by statement_timeout "
            f"({policy.statement_timeout_ms} ms, statement_timeout_ms); raise it (validation "
            "and concurrent index builds do not block writers) and apply again, it resumes",
            sqlstate=sqlstate, during=step.title, statement_timeout_ms=policy.statement_timeout_ms)
    return describe_db_error(error, during=f"step {step.title!r}")


_ACTIVITY = sa.text(
    "SELECT a.pid, a.application_name, a.state, "
    "upper(substring(a.query FROM '^\\s*([A-Za-z]+)')) AS command, "
    "extract(epoch FROM now() - coalesce(a.xact_start, a.query_start)) AS age "
    "FROM unnest(pg_blocking_pids(:pid)) AS b(pid) "
    "JOIN pg_stat_activity a ON a.pid = b.pid ORDER BY a.pid")
_WAITING = sa.text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid")


class BlockerWatch:
    """Who blocks session ``pid``, sampled from a session of its own while a step runs.

    Only a session that waits for a lock is asked about (``pg_blocking_pids`` briefly takes
    the lock manager's locks, so it is not called while nothing waits); the watcher opens its
    connection only when a step outlives one interval. Diagnosis is best effort: a watcher
    that cannot connect leaves the holders unknown, never fails the step.
    """

    def __init__(self, engine: sa.Engine, pid: int, interval: float) -> None:
        self.engine, self.pid, self.interval = engine, pid, interval
        self._seen: dict[int, LockHolder] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True,
                                        name="igny8ctl-lock-watch")

    def __enter__(self) -> BlockerWatch:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(5)

    def holders(self) -> tuple[LockHolder, ...]:
        self._stop.set()
        self._thread.join(5)
        return tuple(self._seen[pid] for pid in sorted(self._seen))

    def _watch(self) -> None:
        connection: sa.Connection | None = None
        try:
            while not self._stop.wait(self.interval):
                if connection is None:
                    connection = self.engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT")
                if not connection.execute(_WAITING, {"pid": self.pid}).scalar():
                    continue
                for row in connection.execute(_ACTIVITY, {"pid": self.pid}):
                    self._seen[int(row.pid)] = LockHolder(
                        int(row.pid), row.application_name or "", row.state or "",
                        float(row.age) if row.age is not None else None,
                        row.command or "")
        except sa_exc.SQLAlchemyError:
            return
        finally:
            if connection is not None:
                connection.close()
