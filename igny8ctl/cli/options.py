"""Options shared by every command that talks to a database, and the output plumbing."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

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
Apply = Annotated[bool, typer.Option("--apply", help="Write the changes (default: preview).")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def load(database_url: str | None, config: Path | None, profile: str | None) -> Settings:
    from igny8ctl.config import load_settings

    return load_settings(database_url, config, profile)


def stdout() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False)


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def confirm(question: str, yes: bool) -> None:
    """Ask on a terminal; refuse without one unless ``--yes`` (cron must say so explicitly)."""
    from igny8ctl.errors import ConfigError

    if yes:
        return
    if not stdin_is_terminal():
        raise ConfigError("refusing to write without a terminal to confirm: pass --yes")
    if not typer.confirm(question, default=False, err=True):
        raise typer.Exit(1)


def write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    from igny8ctl.errors import ConfigError

    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.resolve().parent,
                                                 prefix=f".{path.name}.")
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {error.strerror}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
