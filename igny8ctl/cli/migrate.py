"""``igny8ctl migrate``: make the database enforce every user's account and every tenant link.

Alembic is imported inside the commands only, so ``igny8ctl --help`` stays fast.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from igny8ctl.cli.options import (
    ConfigPath,
    DatabaseUrl,
    FormatOption,
    Profile,
    Yes,
    confirm,
    load,
    output_format_of,
)
from igny8ctl.errors import ExitCode
from igny8ctl.render import OutputFormat

if TYPE_CHECKING:
    from igny8ctl.config import Settings

app = typer.Typer(
    help="Make the database enforce that every user has an account and that no row links to "
         "another tenant's row, safely on a live database.",
    no_args_is_help=True,
)

#: What each command of this group can print; a test holds the renderer registry to it.
FORMATS = {
    "migrate.status": (OutputFormat.TABLE, OutputFormat.JSON),
    "migrate.run": (OutputFormat.TABLE, OutputFormat.JSON),
    "migrate.generate": (OutputFormat.TABLE, OutputFormat.JSON),
    "migrate.django-state": (OutputFormat.TABLE, OutputFormat.JSON),
}

LockTimeout = Annotated[int | None, typer.Option(
    "--lock-timeout-ms", min=1, max=2_147_483_647, show_default=False,
    help="lock_timeout of every DDL statement [default: lock_timeout_ms, 2000].")]
LockRetries = Annotated[int | None, typer.Option(
    "--lock-retries", min=1, max=1000, show_default=False,
    help="Attempts per step while its lock times out [default: lock_retries, 5].")]
StatementTimeout = Annotated[int | None, typer.Option(
    "--statement-timeout-ms", min=1, max=2_147_483_647, show_default=False,
    help="statement_timeout of every DDL statement, above the lock timeout "
         "[default: statement_timeout_ms, 60000].")]
To = Annotated[str | None, typer.Option(
    "--to", show_default=False, metavar="REVISION",
    help="account-not-null or tenant-keys [default: every revision].")]


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
    output_format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show revisions, what the database enforces, blocking rows, and apply's next steps."""
    from igny8ctl import api
    from igny8ctl.render import emit

    output_format = output_format_of(output_format)
    emit(api.migration_status(_settings(database_url, config, profile)), output_format)


@app.command()
def generate(
    directory: Annotated[Path, typer.Option(
        "--dir", help="Directory to write the revisions into.", file_okay=False)] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    config: ConfigPath = None,
    profile: Profile = None,
    output_format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Write the revisions as reviewable Alembic files, mapping and SQL spelled out."""
    from igny8ctl import api
    from igny8ctl.render import emit

    output_format = output_format_of(output_format)
    emit(api.generate_migration(_settings(None, config, profile), directory, force),
         output_format)


@app.command()
def apply(
    database_url: DatabaseUrl = None,
    config: ConfigPath = None,
    profile: Profile = None,
    to: To = None,
    sql: Annotated[bool, typer.Option(
        "--sql", help="Print the SQL script for review instead; never connects.")] = False,
    max_steps: Annotated[int | None, typer.Option(
        "--max-steps", min=0, max=10_000, show_default=False,
        help="Stop after N steps without recording the revision; the next apply resumes.")]
    = None,
    lock_timeout_ms: LockTimeout = None,
    lock_retries: LockRetries = None,
    statement_timeout_ms: StatementTimeout = None,
    output_format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Upgrade to head (or --to), without a prompt. Exit 0 done, 1 refused, 3 database,
    4 lock timeout."""
    from igny8ctl import api
    from igny8ctl.render import emit

    output_format = output_format_of(output_format)
    settings = _settings(database_url, config, profile, lock_timeout_ms, lock_retries,
                         statement_timeout_ms)
    if sql:
        typer.echo(api.migration_sql(settings, to), nl=False)
        return
    emit(api.apply_migration(settings, max_steps, to), output_format)


@app.command()
def downgrade(
    database_url: DatabaseUrl = None,
    config: ConfigPath = None,
    profile: Profile = None,
    to: Annotated[str | None, typer.Option(
        "--to", show_default=False, metavar="REVISION",
        help="account-not-null, or base for none [default: one revision back].")] = None,
    yes: Yes = False,
    lock_timeout_ms: LockTimeout = None,
    lock_retries: LockRetries = None,
    statement_timeout_ms: StatementTimeout = None,
    output_format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Take revisions away again (one back without --to). Asks first unless --yes."""
    from igny8ctl import api
    from igny8ctl.db import display_url, normalize_url
    from igny8ctl.render import emit

    output_format = output_format_of(output_format)
    settings = _settings(database_url, config, profile, lock_timeout_ms, lock_retries,
                         statement_timeout_ms)
    removed = api.migration_downgrade_plan(settings, to)
    if removed:
        where = display_url(normalize_url(settings.require_url()))
        confirm(f"Remove {', '.join(removed)} from {where}? "
                + " ".join(api.migration_weakens(removed)), yes)
    emit(api.downgrade_migration(settings, to), output_format)


@app.command("django-state")
def django_state(
    files: Annotated[list[Path], typer.Argument(
        metavar="FILE...", help="Django migration files, as makemigrations wrote them.",
        show_default=False)],
    check: Annotated[bool, typer.Option(
        "--check", help="Only report operations that would drop and re-create a foreign key "
                        "or scan a table under ACCESS EXCLUSIVE (exit 1 if any); never "
                        "connects, never writes.")] = False,
    model: Annotated[str | None, typer.Option(
        "--model", show_default=False, help="The user model's name [default: user].")] = None,
    field: Annotated[str | None, typer.Option(
        "--field", show_default=False,
        help="Its tenant field [default: the mapped column without _id, account].")] = None,
    database_url: DatabaseUrl = None,
    config: ConfigPath = None,
    profile: Profile = None,
    output_format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Make Django's AlterField of the tenant column state-only once igny8ctl enforced it.

    Refuses (exit 1, files unchanged) unless the database enforces NOT NULL and a validated
    foreign key. Exit 2 for a file that is not a Django migration.
    """
    from igny8ctl import api
    from igny8ctl.render import emit

    output_format = output_format_of(output_format)
    settings = _settings(database_url, config, profile)
    result = api.django_state(settings, files, check=check, model=model, field=field)
    emit(result, output_format)
    if result.failed:
        raise typer.Exit(ExitCode.FINDINGS)
