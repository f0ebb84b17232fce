"""The revisions' entry points: refuse bad data, then run the plan one step at a time.

Before each step the recipe's plan is read again from the catalog and only its first step
runs, so a run interrupted at any point (killed, lock or statement timeout) resumes where it
stopped, and a step that ran yet does not show as done stops the run instead of looping.
A step whose lock times out is retried after a backoff, up to ``lock_retries`` attempts in
all; then the run gives up naming the sessions that blocked it. PostgreSQL steps commit one
by one (Alembic's autocommit block); SQLite's rebuilds stay in the migration's transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext

from igny8ctl.config import Settings
from igny8ctl.db import Igny8Schema, reflect
from igny8ctl.dialects import dialect_named, dialect_of
from igny8ctl.errors import ConfigError, DatabaseUnavailable, LockBusy
from igny8ctl.migrations import MAX_STEPS, SETTINGS, STEP_LOG, postgresql, sqlite
from igny8ctl.migrations.account_not_null import AccountNotNull
from igny8ctl.migrations.steps import Offline, Policy, Recipe, Step, StepRun, Stopped
from igny8ctl.migrations.tenant_keys import TenantKeys
from igny8ctl.render.text import printable

#: The revisions in order, by the names operators use (``--to account-not-null``).
RECIPES: dict[str, type[Recipe]] = {recipe.name: recipe for recipe in (AccountNotNull, TenantKeys)}

Direction = Literal["upgrade", "downgrade"]


def upgrade(context: MigrationContext, name: str, settings: Settings | None = None) -> None:
    """``upgrade()`` of revision ``name``; ``settings`` are baked in by ``migrate generate``."""
    settings = _settings(context, settings)
    recipe = RECIPES[name](settings)
    if context.as_sql:
        if not dialect_named(context.dialect.name).alters_constraints:
            raise ConfigError("--sql is for PostgreSQL: the SQLite migration rebuilds tables "
                              "from their live definition", key="--sql")
        emit(context, recipe.name, recipe.offline(), Policy.of(settings))
        return
    attributes = _attributes(context)
    run(context, recipe, "upgrade", attributes.get(STEP_LOG), attributes.get(MAX_STEPS))


def downgrade(context: MigrationContext, name: str, settings: Settings | None = None) -> None:
    settings = _settings(context, settings)
    if context.as_sql:
        raise ConfigError("a downgrade has no offline script: run igny8ctl migrate downgrade")
    attributes = _attributes(context)
    run(context, RECIPES[name](settings), "downgrade", attributes.get(STEP_LOG), None)


def run(context: MigrationContext, recipe: Recipe, direction: Direction,
        log: list[StepRun] | None, max_steps: int | None) -> None:
    """Preflight (upgrade), then the first pending step, re-planned, until none is pending."""
    connection = _connection(context)
    schema = reflect(connection, recipe.settings)
    planner: Planner = recipe.plan if direction == "upgrade" else recipe.downgrade_plan
    if not planner(connection, schema):
        return
    if direction == "upgrade":
        refusal = recipe.preflight(connection, schema)
        if refusal is not None:
            raise refusal
    log = [] if log is None else log
    dialect = schema.dialect
    block: AbstractContextManager[None] = (
        context.autocommit_block() if dialect.alters_constraints else nullcontext())
    with block:
        _loop(context, recipe, schema, planner, log, max_steps)


Planner = Callable[[sa.Connection, Igny8Schema], tuple[Step, ...]]


def _loop(context: MigrationContext, recipe: Recipe, schema: Igny8Schema,
          planner: Planner, log: list[StepRun], max_steps: int | None) -> None:
    policy = Policy.of(recipe.settings)
    done: set[str] = set()
    attempts: dict[str, int] = {}
    pid: int | None = None
    while True:
        connection = _connection(context)
        pending = planner(connection, schema)
        if not pending:
            return
        step = pending[0]
        if step.key in done:
            raise DatabaseUnavailable(f"step {step.title!r} ran, yet the catalog does not "
                                      "show it done; stopping rather than looping")
        if max_steps is not None and len(log) >= max_steps:
            raise Stopped(recipe.name, len(pending))
        attempt = attempts.setdefault(step.key, 1)
        try:
            if schema.dialect.alters_constraints:
                pid = pid if pid is not None else postgresql.backend_pid(connection)
                duration = postgresql.execute(connection, step, policy, recipe, pid)
            else:
                duration = sqlite.execute(connection, step)
        except postgresql.LockTimedOut as timeout:
            if attempt >= policy.attempts:
                raise _gave_up(step, policy, timeout) from None
            time.sleep(policy.delay(attempt))
            attempts[step.key] = attempt + 1
            continue
        done.add(step.key)
        log.append(StepRun(recipe.name, step.key, step.title, attempt, duration))


def _gave_up(step: Step, policy: Policy, timeout: postgresql.LockTimedOut) -> LockBusy:
    who = "; ".join(holder.describe() for holder in timeout.holders) or (
        "none seen (each wait ended before the watcher looked)")
    tables = ", ".join(dict.fromkeys(table for table, _ in step.locks))
    return LockBusy(
        f"gave up on step {step.title!r} after {policy.attempts} attempt(s): no lock on "
        f"{tables} within lock_timeout {policy.lock_timeout_ms} ms; blocked by: {who}; the "
        "steps done so far stay, apply again to resume",
        lock=tables, holders=timeout.holders, step=step.key)


def reassert(connection: sa.Connection, settings: Settings, names: list[str],
             log: list[StepRun], max_steps: int | None) -> None:
    """Run the plans of revisions already recorded whose work the catalog no longer shows
    (a key dropped by hand, a table Django rebuilt on SQLite), preflight included, each in
    a migration transaction of its own as Alembic would run it."""
    dialect = dialect_of(connection)
    for name in names:
        recipe = RECIPES[name](settings)
        pending = bool(recipe.plan(connection, reflect(connection, settings)))
        connection.rollback()
        if not pending:
            continue
        dialect.prepare_migration(connection.connection.driver_connection)
        context = MigrationContext.configure(connection,
                                             opts={"transaction_per_migration": True})
        with context.begin_transaction(_per_migration=True):
            run(context, recipe, "upgrade", log, max_steps)


def emit(context: MigrationContext, name: str, script: Offline, policy: Policy) -> None:
    """Offline (``--sql``): the same steps, written out for review.

    The preflight stays in Alembic's transaction of the revision, so a refusal also rolls
    back the version table; each step then runs in a transaction of its own, or outside any
    (``CONCURRENTLY``) under session timeouts. Titles, which hold names, are printed escaped.
    """
    impl = context.impl
    for statement in script.preflight:
        impl.static_output(f"-- igny8ctl: {name}: refuse while the data would break it\n"
                           f"{statement};")
    with context.autocommit_block():
        for number, step in enumerate(script.steps, 1):
            header = f"-- igny8ctl {name}, step {number}: {printable(step.title)}"
            body = [statement + ";" for statement in step.statements]
            if step.transactional:
                impl.static_output("\n".join((
                    header, "BEGIN;",
                    f"SET LOCAL lock_timeout = {policy.lock_timeout_ms};",
                    f"SET LOCAL statement_timeout = {policy.statement_timeout_ms};",
                    *body, "COMMIT;")))
            else:
                impl.static_output("\n".join((
                    header + " (outside a transaction)",
                    f"SET lock_timeout = {policy.lock_timeout_ms};",
                    f"SET statement_timeout = {policy.statement_timeout_ms};",
                    *body, "RESET lock_timeout;", "RESET statement_timeout;")))


def _attributes(context: MigrationContext) -> dict[str, Any]:
    return context.config.attributes if context.config else {}


def _settings(context: MigrationContext, settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    found = _attributes(context).get(SETTINGS)
    return found if isinstance(found, Settings) else Settings()


def _connection(context: MigrationContext) -> sa.Connection:
    if context.connection is None:
        raise ConfigError("the migration needs a database connection")
    return context.connection
