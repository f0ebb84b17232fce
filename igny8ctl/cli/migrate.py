"""``igny8ctl migrate``: make the database enforce that every user has an account.

Alembic is imported inside the commands only, so ``igny8ctl --help`` stays fast.
"""

from __future__ import annotations

import json
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from igny8ctl.cli.options import ConfigPath, DatabaseUrl, Profile, Yes, confirm, load
from igny8ctl.render.console import stdout

if TYPE_CHECKING:
    from igny8ctl.config import Settings

app = typer.Typer(
    help="Make user.account_id NOT NULL with a valid foreign key, safely on a live database.",
    no_args_is_help=True,
)


class StatusFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


LockTimeout = Annotated[int | None, typer.Option(
    "--lock-timeout-ms", min=1, show_default=False,
    help="lock_timeout of every DDL statement [default: lock_timeout_ms, 2000].")]
LockRetries = Annotated[int | None, typer.Option(
    "--lock-retries", min=1, show_default=False,
    help="Attempts per step while its lock times out [default: lock_retries, 5].")]
StatementTimeout = Annotated[int | None, typer.Option(
    "--statement-timeout-ms", min=1, show_default=False,
    help="statement_timeout of every DDL statement, above the lock timeout "
         "[default: statement_timeout_ms, 60000].")]


def _settings(database_url: str | None, config: Path | None, profile: str | None,
              lock_timeout_ms: int | None = None, lock_retries: int | None = None,
              statement_timeout_ms: int | None = None) -> Settings:
    settings = load(database_url, config, profile)
    overrides = {key: value for key, value in (
        ("lock_timeout_ms", lock_timeout_ms), ("lock_retries", lock_retries),
        ("statement_timeout_ms", statement_timeout_ms)) if value is not None}
    return replace(settings, **overrides)  # type: ignore[arg-type]


@app.command()
def status(
    database_url: DatabaseUrl = None,
    config: ConfigPath = None,
    profile: Profile = None,
    output_format: Annotated[StatusFormat, typer.Option("--format", "-f", help="Output format.")]
    = StatusFormat.TABLE,
) -> None:
    """Show revisions, what the database enforces, blocking users, and apply's next steps."""
    from igny8ctl import api

    result = api.migration_status(_settings(database_url, config, profile))
    if output_format is StatusFormat.JSON:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    from igny8ctl.render.migrate import render_status

    render_status(result, stdout())


@app.command()
def generate(
    directory: Annotated[Path, typer.Option(
        "--dir", help="Directory to write the revision into.", file_okay=False)] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    config: ConfigPath = None,
    profile: Profile = None,
) -> None:
    """Write the revision as a reviewable Alembic file, names and SQL spelled out."""
    from igny8ctl import api

    path = api.generate_migration(_settings(None, config, profile), directory, force)
    stdout().print(f"wrote {path}", highlight=False, markup=False)


@app.command()
def apply(
    database_url: DatabaseUrl = None,
    config: ConfigPath = None,
    profile: Profile = None,
    sql: Annotated[bool, typer.Option(
        "--sql", help="Print the SQL script for review instead; never connects.")] = False,
    max_steps: Annotated[int | None, typer.Option(
        "--max-steps", min=0, show_default=False,
        help="Stop after N steps without recording the revision; the next apply resumes.")]
    = None,
    lock_timeout_ms: LockTimeout = None,
    lock_retries: LockRetries = None,
    statement_timeout_ms: StatementTimeout = None,
) -> None:
    """Upgrade to head, without a prompt. Exit 0 done, 1 refused, 3 database, 4 lock timeout."""
    from igny8ctl import api

    settings = _settings(database_url, config, profile, lock_timeout_ms, lock_retries,
                         statement_timeout_ms)
    if sql:
        typer.echo(api.migration_sql(settings), nl=False)
        return
    from igny8ctl.render.migrate import render_run

    render_run(api.apply_migration(settings, max_steps), stdout())


@app.command()
def downgrade(
    database_url: DatabaseUrl = None,
    config: ConfigPath = None,
    profile: Profile = None,
    yes: Yes = False,
    lock_timeout_ms: LockTimeout = None,
    lock_retries: LockRetries = None,
    statement_timeout_ms: StatementTimeout = None,
) -> None:
    """Make the column nullable again (the foreign key stays). Asks first unless --yes."""
    from igny8ctl import api
    from igny8ctl.db import display_url, normalize_url
    from igny8ctl.render.migrate import render_run

    settings = _settings(database_url, config, profile, lock_timeout_ms, lock_retries,
                         statement_timeout_ms)
    column = f"{settings.table_name('user')}.{settings.column_name('user', 'account_id')}"
    where = display_url(normalize_url(settings.require_url()))
    confirm(f"Let {column} be NULL again on {where}? Users without an account become "
            "possible.", yes)
    render_run(api.downgrade_migration(settings), stdout())
