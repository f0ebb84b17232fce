"""Options shared by every command that talks to a database, and the output plumbing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from igny8ctl.render import OutputFormat

if TYPE_CHECKING:
    from igny8ctl.config import Settings

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="Database URL (postgres://, postgresql://, sqlite:///). "
                 "Else IGNY8_DATABASE_URL, DATABASE_URL, or igny8ctl.toml.",
                 show_default=False),
]
ConfigPath = Annotated[
    Path | None,
    typer.Option("--config", help="Configuration file [default: ./igny8ctl.toml].",
                 show_default=False, dir_okay=False),
]
Profile = Annotated[
    str | None,
    typer.Option("--profile", help="Profile of the configuration file (or IGNY8CTL_PROFILE).",
                 show_default=False),
]
FormatOption = Annotated[OutputFormat, typer.Option(
    "--format", "-f", help="Output format (table, json; check also junit, markdown).")]
Apply = Annotated[bool, typer.Option("--apply", help="Write the changes (default: preview).")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def load(database_url: str | None, config: Path | None, profile: str | None) -> Settings:
    from igny8ctl.config import load_settings

    return load_settings(database_url, config, profile)


def output_format_of(output_format: OutputFormat) -> OutputFormat:
    """Note the format a command was asked for (errors then come out in it too)."""
    from igny8ctl.render import request_format

    request_format(output_format)
    return output_format


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def require_confirmable(yes: bool) -> None:
    """Refuse now, before costly work, what ``confirm`` would refuse after it."""
    from igny8ctl.errors import ConfigError

    if not yes and not stdin_is_terminal():
        raise ConfigError("refusing to write without a terminal to confirm: pass --yes")


def confirm(question: str, yes: bool) -> None:
    """Ask on a terminal; refuse without one unless ``--yes`` (cron must say so explicitly)."""
    from igny8ctl.errors import Refused

    if yes:
        return
    require_confirmable(yes)
    from igny8ctl.errors import Interrupted

    try:
        confirmed = typer.confirm(question, default=False, err=True)
    except typer.Abort as abort:
        if isinstance(abort.__context__, KeyboardInterrupt):
            raise Interrupted("interrupted at the prompt: nothing was written") from None
        raise Refused("no answer at the prompt (end of input): nothing was written") from None
    if not confirmed:
        raise Refused("not confirmed: nothing was written")
