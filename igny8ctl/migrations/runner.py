"""The ``migrate`` verbs as plain functions: Alembic configured in code, results as data."""

from __future__ import annotations

import io
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError, format_as_comma
from mako.template import Template  # type: ignore[import-untyped]

from igny8ctl import __version__
from igny8ctl.catalog import Constraint, account_column_state
from igny8ctl.config import Settings
from igny8ctl.db import connect, create_engine, display_url, job_lock, read_only, reflect
from igny8ctl.errors import ConfigError, DatabaseUnavailable
from igny8ctl.migrations import (
    CONNECTION,
    MAX_STEPS,
    REVISION,
    SCRIPT_LOCATION,
    SETTINGS,
    STEP_LOG,
    VERSION_TABLE,
    recipe,
)

JOB_LOCK = "migrate"


@dataclass(frozen=True)
class MigrationStatus:
    database: str
    dialect: str
    table: str
    column: str
    current: tuple[str, ...]
    head: str
    pending: tuple[str, ...]
    nullable: bool
    foreign_key: Constraint | None
    checks: tuple[Constraint, ...]
    orphaned: int
    dangling: int
    steps: tuple[recipe.Step, ...]

    @property
    def refusal(self) -> str | None:
        """Why ``apply`` would refuse, if it would."""
        return recipe.refusal(self.orphaned, self.dangling) if self.steps else None

    @property
    def enforced(self) -> bool:
        return not self.nullable and self.foreign_key is not None and self.foreign_key.validated

    @property
    def next_action(self) -> str:
        if self.steps and not self.pending:
            return ("nothing: the revision is recorded as applied, yet the column or its key "
                    "was changed by hand; igny8ctl migrate downgrade, then apply, re-runs it")
        if self.refusal:
            return "refuse until repaired: " + self.refusal.split(": ", 1)[1]
        if self.steps:
            return "run " + "; then ".join(step.title for step in self.steps)
        if self.pending:
            return f"record revision {self.head} (the database already enforces it)"
        return "nothing: the database enforces it"

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "dialect": self.dialect,
            "table": self.table,
            "column": self.column,
            "current": list(self.current),
            "head": self.head,
            "pending": list(self.pending),
            "nullable": self.nullable,
            "foreign_key": None if self.foreign_key is None else {
                "name": self.foreign_key.name, "validated": self.foreign_key.validated},
            "not_null_checks": [{"name": c.name, "validated": c.validated} for c in self.checks],
            "orphaned_users": self.orphaned,
            "dangling_users": self.dangling,
            "enforced": self.enforced,
            "next": {
                "action": self.next_action,
                "refused": self.refusal is not None,
                "steps": [{"key": s.key, "title": s.title, "sql": list(s.statements)}
                          for s in self.steps],
            },
        }


@dataclass(frozen=True)
class ApplyResult:
    database: str
    direction: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    steps: tuple[recipe.StepRun, ...]
    remaining: int
    duration_s: float

    @property
    def complete(self) -> bool:
        return self.remaining == 0

    @property
    def changed(self) -> bool:
        return bool(self.steps) or self.before != self.after


def status(settings: Settings) -> MigrationStatus:
    """Revisions, what the catalog enforces, the blocking defects, and ``apply``'s next steps."""
    target = recipe.Target.of(settings)
    engine = create_engine(settings)
    with read_only(engine, settings) as connection:
        schema = reflect(connection, settings)
        state = account_column_state(connection, schema)
        orphaned, dangling = recipe.defect_counts(connection, schema, settings)
        current = _current(connection)
    script = ScriptDirectory.from_config(_config(settings))
    head = script.get_current_head() or REVISION
    pending = tuple(reversed([
        s.revision for s in script.iterate_revisions("heads", current or "base")]))
    return MigrationStatus(
        database=display_url(engine.url),
        dialect=engine.dialect.name,
        table=target.user_table,
        column=target.column,
        current=current,
        head=head,
        pending=pending,
        nullable=not state.not_null,
        foreign_key=state.valid_foreign_key or next(iter(state.foreign_keys), None),
        checks=state.not_null_checks,
        orphaned=orphaned,
        dangling=dangling,
        steps=recipe.plan(state, target, engine.dialect.name),
    )


def apply(settings: Settings, max_steps: int | None = None) -> ApplyResult:
    """Upgrade to head. ``max_steps`` stops early, unrecorded, for a staged rollout."""
    return _migrate(settings, "upgrade", max_steps)


def downgrade(settings: Settings) -> ApplyResult:
    """Make the column nullable again; the foreign key stays."""
    return _migrate(settings, "downgrade", None)


def offline_sql(settings: Settings) -> str:
    """The upgrade as a SQL script for review, without connecting to the database."""
    buffer = io.StringIO()
    with _alembic_errors():
        command.upgrade(_config(settings, buffer), "head", sql=True)
    return buffer.getvalue()


def generate(settings: Settings, directory: Path, force: bool = False) -> Path:
    """Write the revision, names and SQL spelled out, for an operator's own repository."""
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory")
    path = directory / f"{REVISION}_user_account_not_null.py"
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists: pass --force to overwrite it")
    target = recipe.Target.of(settings)
    policy = recipe.Policy.of(settings)
    template = Template(text=(resources.files("igny8ctl.migrations") / "script.py.mako")
                        .read_text(encoding="utf-8"))
    text = template.render(
        message=f"Make {target.user_table}.{target.column} NOT NULL, with a valid foreign key.",
        up_revision=REVISION,
        down_revision=None,
        branch_labels=None,
        depends_on=None,
        create_date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        comma=format_as_comma,
        recipe_sql=_recipe_doc(target, policy),
        imports="from igny8ctl.config import Settings\nfrom igny8ctl.migrations import recipe",
        preamble=_settings_literal(settings),
        upgrades="recipe.upgrade(op.get_context(), SETTINGS)",
        downgrades="recipe.downgrade(op.get_context(), SETTINGS)",
    )
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror}") from None
    return path


def _recipe_doc(target: recipe.Target, policy: recipe.Policy) -> str:
    intro = textwrap.fill(
        f"Generated by igny8ctl {__version__}. On PostgreSQL each step below runs in its own "
        f"transaction with lock_timeout {policy.lock_timeout_ms} ms and statement_timeout "
        f"{policy.statement_timeout_ms} ms, makes up to {policy.attempts} attempts while its "
        "lock times out, and is skipped when the catalog shows it done (the DO blocks are how "
        "a plain script says that). SQLite rebuilds the table in batch mode. Downgrade: DROP "
        "NOT NULL; the foreign key stays.", width=88)
    lines = [intro]
    for number, step in enumerate(recipe.offline_steps(target), 1):
        lines += ["", f"    -- {number}. {step.title}"]
        lines += ["    " + line for statement in step.statements
                  for line in (statement + ";").splitlines()]
    return "\n".join(lines)


def _settings_literal(settings: Settings) -> str:
    columns = {table: dict(mapping) for table, mapping in settings.columns.items()}
    return "\n".join([
        "#: igny8ctl.toml's mapping and timeouts when this file was generated.",
        "SETTINGS = Settings(",
        f"    tables={dict(settings.tables)!r},",
        f"    columns={columns!r},",
        f"    lock_timeout_ms={settings.lock_timeout_ms},",
        f"    statement_timeout_ms={settings.statement_timeout_ms},",
        f"    lock_retries={settings.lock_retries},",
        ")",
    ])


def _migrate(settings: Settings, direction: str, max_steps: int | None) -> ApplyResult:
    recipe.Policy.of(settings)
    engine = create_engine(settings)
    started = time.perf_counter()
    log: list[recipe.StepRun] = []
    remaining = 0
    with job_lock(engine, JOB_LOCK), connect(engine) as connection:
        before = _current(connection)
        connection.rollback()
        config = _config(settings)
        config.attributes.update({CONNECTION: connection, STEP_LOG: log, MAX_STEPS: max_steps})
        try:
            with _alembic_errors():
                if direction == "upgrade":
                    command.upgrade(config, "heads")
                else:
                    command.downgrade(config, "base")
        except recipe.Stopped as stop:
            remaining = stop.remaining
        after = _current(connection)
        connection.rollback()
    return ApplyResult(display_url(engine.url), direction, before, after, tuple(log), remaining,
                       time.perf_counter() - started)


def _config(settings: Settings, output: io.StringIO | None = None) -> Config:
    config = Config(output_buffer=output)
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes[SETTINGS] = settings
    return config


def _current(connection: sa.Connection) -> tuple[str, ...]:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return tuple(context.get_current_heads())


@contextmanager
def _alembic_errors() -> Iterator[None]:
    try:
        yield
    except CommandError as error:
        raise DatabaseUnavailable(f"alembic: {error}") from None
