"""The ``migrate`` verbs as plain functions: Alembic configured in code, results as data."""

from __future__ import annotations

import io
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import ClassVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError, format_as_comma
from mako.template import Template  # type: ignore[import-untyped]

from igny8ctl import __version__
from igny8ctl.catalog import (
    AccountColumnState,
    TenantKeyState,
    TenantLink,
    account_column_state,
    tenant_links,
)
from igny8ctl.config import Settings
from igny8ctl.db import connect, create_engine, display_url, job_lock, read_only, reflect
from igny8ctl.errors import ConfigError, DatabaseUnavailable
from igny8ctl.migrations import (
    CONNECTION,
    HEAD,
    MAX_STEPS,
    REVISIONS,
    SCRIPT_LOCATION,
    SETTINGS,
    STEP_LOG,
    VERSION_TABLE,
    account_not_null,
    recipe,
)
from igny8ctl.migrations.steps import Policy, Step, StepRun, Stopped
from igny8ctl.migrations.tenant_keys import TenantKeys

JOB_LOCK = "migrate"
BASE = "base"
NAMES = {revision: name for name, revision in REVISIONS.items()}


@dataclass(frozen=True)
class RevisionState:
    """One revision: recorded or not, the steps ``apply`` would run, and why it would refuse."""

    name: str
    revision: str
    applied: bool
    steps: tuple[Step, ...]
    refusal: str | None

    @property
    def drifted(self) -> bool:
        """Recorded, yet the catalog lacks some of its work: ``apply`` runs it again."""
        return self.applied and bool(self.steps)


@dataclass(frozen=True)
class MigrationStatus:
    KIND: ClassVar[str] = "migrate.status"

    database: str
    dialect: str
    current: tuple[str, ...]
    revisions: tuple[RevisionState, ...]
    table: str
    column: str
    account_column: AccountColumnState
    orphaned: int
    dangling: int
    tenant_keys: tuple[TenantKeyState, ...]
    excluded: tuple[TenantLink, ...]

    @property
    def head(self) -> str:
        return HEAD

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(r.revision for r in self.revisions if not r.applied)

    @property
    def nullable(self) -> bool:
        return not self.account_column.not_null

    @property
    def enforced(self) -> bool:
        key = self.account_column.valid_foreign_key
        return not self.nullable and key is not None

    @property
    def refusal(self) -> str | None:
        return next((r.refusal for r in self.revisions if r.refusal), None)

    @property
    def next_action(self) -> str:
        refused = next((r for r in self.revisions if r.refusal), None)
        if refused is not None and refused.refusal is not None:
            return (f"refuse {refused.name} until repaired: "
                    + refused.refusal.split(": ", 1)[1])
        todo = [step for r in self.revisions for step in r.steps]
        drifted = [r.name for r in self.revisions if r.drifted]
        if todo:
            again = (f" ({', '.join(drifted)} recorded, yet the database lost some of it)"
                     if drifted else "")
            if len(todo) <= 3:
                return "run " + "; then ".join(step.title for step in todo) + again
            counts = ", ".join(f"{len(r.steps)} of {r.name}" for r in self.revisions if r.steps)
            return f"run {len(todo)} steps ({counts}), in the order listed{again}"
        if self.pending:
            return (f"record revision(s) {', '.join(NAMES[r] for r in self.pending)} (the "
                    "database already enforces them)")
        return "nothing: the database enforces every revision"


@dataclass(frozen=True)
class ApplyResult:
    KIND: ClassVar[str] = "migrate.run"

    database: str
    direction: str
    target: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    steps: tuple[StepRun, ...]
    stopped: Stopped | None
    duration_s: float

    @property
    def complete(self) -> bool:
        return self.stopped is None

    @property
    def changed(self) -> bool:
        return bool(self.steps) or self.before != self.after


@dataclass(frozen=True)
class Generated:
    KIND: ClassVar[str] = "migrate.generate"

    paths: tuple[Path, ...]


def status(settings: Settings) -> MigrationStatus:
    """Revisions, what the catalog enforces, the blocking defects, and ``apply``'s next steps."""
    engine = create_engine(settings)
    with read_only(engine, settings) as connection:
        schema = reflect(connection, settings)
        current = _current(connection)
        applied = _applied(current)
        revisions = []
        for name, revision in REVISIONS.items():
            step_recipe = recipe.RECIPES[name](settings)
            steps = step_recipe.plan(connection, schema)
            refusal = step_recipe.preflight(connection, schema) if steps else None
            revisions.append(RevisionState(name, revision, revision in applied, steps,
                                           refusal.message if refusal else None))
        state = account_column_state(connection, schema)
        orphaned, dangling = account_not_null.defect_counts(connection, schema, settings)
        keys = TenantKeys(settings)
        tenant_keys = tuple(keys.states(connection, schema))
        excluded = tuple(tenant_links(schema, excluded=True))
    target = account_not_null.Target.of(settings)
    return MigrationStatus(display_url(engine.url), engine.dialect.name, current,
                           tuple(revisions), target.user_table, target.column, state,
                           orphaned, dangling, tenant_keys, excluded)


def revision_of(name: str, allow_base: bool = False) -> str:
    """A revision named as operators name it (``tenant-keys``), or by id; ``base`` for none."""
    if allow_base and name == BASE:
        return BASE
    if name in REVISIONS:
        return REVISIONS[name]
    if name in NAMES:
        return name
    choices = ", ".join([*REVISIONS, *([BASE] if allow_base else [])])
    raise ConfigError(f"unknown revision {name!r} (choose {choices})", key="--to")


def apply(settings: Settings, to: str | None = None,
          max_steps: int | None = None) -> ApplyResult:
    """Upgrade to ``to`` (default head). ``max_steps`` stops early, unrecorded, for a staged
    rollout. Recorded revisions whose work the catalog no longer shows are run again."""
    target = revision_of(to) if to else HEAD
    Policy.of(settings)
    engine = create_engine(settings)
    started = time.perf_counter()
    log: list[StepRun] = []
    stopped: Stopped | None = None
    with job_lock(engine, JOB_LOCK), connect(engine) as connection:
        before = _current(connection)
        connection.rollback()
        wanted = _upto(target)
        try:
            if not set(wanted) <= _applied(before):
                config = _config(settings)
                config.attributes.update({CONNECTION: connection, STEP_LOG: log,
                                          MAX_STEPS: max_steps})
                with _alembic_errors():
                    command.upgrade(config, target)
            recipe.reassert(connection, settings, [NAMES[r] for r in wanted], log, max_steps)
        except Stopped as stop:
            stopped = stop
        after = _current(connection)
        connection.rollback()
    return ApplyResult(display_url(engine.url), "upgrade", NAMES[target], before, after,
                       tuple(log), stopped, time.perf_counter() - started)


def downgrade_target(settings: Settings, to: str | None) -> tuple[str, tuple[str, ...]]:
    """Where ``downgrade`` goes (one revision back without ``to``) and the revisions it
    takes away, newest first; read before asking the operator."""
    engine = create_engine(settings)
    with read_only(engine, settings) as connection:
        current = _current(connection)
    return _downgrade_plan(current, to)


def downgrade(settings: Settings, to: str | None = None) -> ApplyResult:
    """Take revisions away: one back, to a named one, or to ``base``."""
    Policy.of(settings)
    engine = create_engine(settings)
    started = time.perf_counter()
    log: list[StepRun] = []
    with job_lock(engine, JOB_LOCK), connect(engine) as connection:
        before = _current(connection)
        connection.rollback()
        target, removed = _downgrade_plan(before, to)
        if removed:
            config = _config(settings)
            config.attributes.update({CONNECTION: connection, STEP_LOG: log})
            with _alembic_errors():
                command.downgrade(config, target)
        after = _current(connection)
        connection.rollback()
    return ApplyResult(display_url(engine.url), "downgrade", NAMES.get(target, BASE), before,
                       after, tuple(log), None, time.perf_counter() - started)


def offline_sql(settings: Settings, to: str | None = None) -> str:
    """The upgrade as a SQL script for review, without connecting to the database."""
    buffer = io.StringIO()
    with _alembic_errors():
        command.upgrade(_config(settings, buffer), revision_of(to) if to else HEAD, sql=True)
    return buffer.getvalue()


def generate(settings: Settings, directory: Path, force: bool = False) -> Generated:
    """Write the revisions, mapping and SQL spelled out (as data), for an operator's own
    repository; each calls ``igny8ctl.migrations.recipe``."""
    from igny8ctl.outputs import write_output

    if not directory.is_dir():
        raise ConfigError(f"--dir {directory} is not a directory", key="--dir")
    policy = Policy.of(settings)
    packaged = [entry.name for entry in (resources.files("igny8ctl.migrations") / "versions")
                .iterdir() if entry.name.endswith(".py")]
    paths = {name: directory / next(file for file in packaged if file.startswith(revision))
             for name, revision in REVISIONS.items()}
    for path in paths.values():
        if path.exists() and not force:
            raise ConfigError(f"{path} already exists: pass --force to overwrite it",
                              key="--dir")
    template = Template(text=(resources.files("igny8ctl.migrations") / "script.py.mako")
                        .read_text(encoding="utf-8"))
    previous = None
    for name, revision in REVISIONS.items():
        text = template.render(
            message=f"{name}: {_PURPOSE[name]}",
            up_revision=revision,
            down_revision=previous,
            branch_labels=None,
            depends_on=None,
            create_date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            comma=format_as_comma,
            notes=_notes(policy),
            imports="from igny8ctl.config import Settings\nfrom igny8ctl.migrations import recipe",
            preamble=_settings_literal(settings) + "\n\n" + _sql_literal(settings, revision),
            upgrades=f"recipe.upgrade(op.get_context(), {name!r}, SETTINGS)",
            downgrades=f"recipe.downgrade(op.get_context(), {name!r}, SETTINGS)",
        )
        write_output(paths[name], text, "--dir")
        previous = revision
    return Generated(tuple(paths.values()))


_PURPOSE = {
    "account-not-null": "the user's tenant column NOT NULL, with a valid foreign key.",
    "tenant-keys": "composite (id, tenant) keys that keep every link inside one tenant.",
}


def _notes(policy: Policy) -> str:
    return textwrap.fill(
        f"Generated by igny8ctl {__version__}. On PostgreSQL each step runs in its own "
        f"transaction (or, for CONCURRENTLY, outside any) with lock_timeout "
        f"{policy.lock_timeout_ms} ms and statement_timeout {policy.statement_timeout_ms} ms, "
        f"makes up to {policy.attempts} attempts while its lock times out, and is skipped when "
        "the catalog shows it done. SQLite rebuilds tables from their stored definition. SQL "
        "below is the PostgreSQL script (igny8ctl migrate apply --sql); names are data in "
        "SETTINGS.",
        width=88)


def _settings_literal(settings: Settings) -> str:
    columns = {table: dict(mapping) for table, mapping in settings.columns.items()}
    return "\n".join([
        "#: igny8ctl.toml's mapping and timeouts when this file was generated.",
        "SETTINGS = Settings(",
        f"    tables={dict(settings.tables)!r},",
        f"    columns={columns!r},",
        f"    lock_timeout_ms={settings.lock_timeout_ms!r},",
        f"    statement_timeout_ms={settings.statement_timeout_ms!r},",
        f"    lock_retries={settings.lock_retries!r},",
        f"    tenant_keys_exclude={tuple(settings.tenant_keys_exclude)!r},",
        ")",
    ])


def _sql_literal(settings: Settings, revision: str) -> str:
    """The revision's PostgreSQL script as a string constant, one literal per line: names
    stay data whatever they hold (quotes, newlines, backslashes, triple quotes)."""
    script = offline_sql(replace(settings, database_url=None), NAMES[revision])
    lines = script.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("-- Running upgrade")
                  and line.rstrip().endswith(f"-> {revision}")), 0)
    return "\n".join(["#: The PostgreSQL script of this revision, for review.",
                      "SQL = (", *(f"    {line!r}" for line in lines[start:]), ")"])


def _config(settings: Settings, output: io.StringIO | None = None) -> Config:
    config = Config(output_buffer=output)
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes[SETTINGS] = settings
    return config


def _current(connection: sa.Connection) -> tuple[str, ...]:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return tuple(context.get_current_heads())


def _applied(current: tuple[str, ...]) -> set[str]:
    """The recorded revisions and everything below them (the history is linear)."""
    ordered = list(REVISIONS.values())
    top = max((ordered.index(r) for r in current if r in ordered), default=-1)
    return set(ordered[:top + 1])


def _upto(target: str) -> list[str]:
    ordered = list(REVISIONS.values())
    return ordered[:ordered.index(target) + 1]


def _downgrade_plan(current: tuple[str, ...], to: str | None) -> tuple[str, tuple[str, ...]]:
    ordered = list(REVISIONS.values())
    applied = [r for r in ordered if r in _applied(current)]
    if to is not None:
        target = revision_of(to, allow_base=True)
        if target != BASE and target not in applied:
            raise ConfigError(f"cannot downgrade to {to}: it is not applied (applied: "
                              f"{', '.join(NAMES[r] for r in applied) or 'none'})", key="--to")
    else:
        target = applied[-2] if len(applied) > 1 else BASE
    keep = [] if target == BASE else ordered[:ordered.index(target) + 1]
    return target, tuple(NAMES[r] for r in reversed(applied) if r not in keep)


@contextmanager
def _alembic_errors() -> Iterator[None]:
    try:
        yield
    except CommandError as error:
        raise DatabaseUnavailable(f"alembic: {error}") from None
