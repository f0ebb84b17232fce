"""``igny8ctl doctor``: why can't this user, or this tenant, use auto-cluster? (read-only)"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from igny8ctl.cli.options import (
    ConfigPath,
    DatabaseUrl,
    FormatOption,
    Profile,
    load,
    output_format_of,
)
from igny8ctl.errors import ExitCode
from igny8ctl.render import OutputFormat

if TYPE_CHECKING:
    from igny8ctl.doctor.base import Diagnosis

app = typer.Typer(help="Replay what igny8 does for a user or a tenant (read-only).",
                  no_args_is_help=True)

#: What each command of this group can print; a test holds the renderer registry to it.
FORMATS = {
    "doctor.user": (OutputFormat.TABLE, OutputFormat.JSON, OutputFormat.MARKDOWN),
    "doctor.tenant": (OutputFormat.TABLE, OutputFormat.JSON, OutputFormat.MARKDOWN),
}

Output = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Write the diagnosis to FILE instead of stdout.", dir_okay=False)]


@app.command("user")
def user(
    who: Annotated[str, typer.Argument(
        help="User id, username, or email (case-insensitive).", show_default=False)],
    output_format: FormatOption = OutputFormat.TABLE,
    output: Output = None,
    database_url: DatabaseUrl = None,
    config: ConfigPath = None,
    profile: Profile = None,
) -> None:
    """Each step igny8 takes for this user. Exit 0 usable, 1 blocked, 2 usage, 3 database."""
    from igny8ctl import api

    output_format = output_format_of(output_format)
    _finish(api.doctor_user(load(database_url, config, profile), who), output_format, output)


@app.command("tenant")
def tenant(
    which: Annotated[str, typer.Argument(
        help="Account slug or id.", metavar="TENANT", show_default=False)],
    output_format: FormatOption = OutputFormat.TABLE,
    output: Output = None,
    database_url: DatabaseUrl = None,
    config: ConfigPath = None,
    profile: Profile = None,
) -> None:
    """The same for an account as a whole. Exit 0 usable, 1 blocked, 2 usage, 3 database."""
    from igny8ctl import api

    output_format = output_format_of(output_format)
    _finish(api.doctor_tenant(load(database_url, config, profile), which), output_format,
            output)


def _finish(result: Diagnosis, output_format: OutputFormat, output: Path | None) -> None:
    from igny8ctl.events import current
    from igny8ctl.render import emit
    from igny8ctl.render.doctor import verdict
    from igny8ctl.render.text import printable

    emit(result, output_format, output)
    if output_format is not OutputFormat.TABLE or output is not None:
        current().emit("doctor.finished", printable(verdict(result)),
                       level="info" if result.usable else "warning", usable=result.usable,
                       step=result.blocking.id if result.blocking else None,
                       duration_ms=round(result.duration_s * 1000, 1))
    raise typer.Exit(ExitCode.OK if result.usable else ExitCode.FINDINGS)
