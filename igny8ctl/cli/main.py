"""The ``igny8ctl`` entry point and the one place exceptions become messages and exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer

from igny8ctl import __version__
from igny8ctl.cli import check, cluster, demo, doctor, fix, migrate, repair
from igny8ctl.errors import Igny8Error
from igny8ctl.events import EventLog, LogFormat, configure, current

app = typer.Typer(
    name="igny8ctl",
    help="Administration and data-integrity toolkit for igny8 databases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("demo")(demo.demo)
app.add_typer(check.app, name="check")
app.add_typer(fix.app, name="fix")
app.add_typer(migrate.app, name="migrate")
app.add_typer(cluster.app, name="cluster")
app.add_typer(doctor.app, name="doctor")
app.command("repair")(repair.repair)

DEBUG_ENV = "IGNY8CTL_DEBUG"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"igny8ctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True, help="Print the version and exit.")]
    = False,
    verbose: Annotated[int, typer.Option(
        "--verbose", "-v", count=True, help="More detail; -vv shows tracebacks.")] = 0,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Only warnings and errors on stderr.")] = False,
    log_format: Annotated[LogFormat, typer.Option(
        "--log-format", help="Events on stderr as text or one JSON object per line.")]
    = LogFormat.TEXT,
) -> None:
    """Find, repair and prevent integrity defects in igny8 tenant data."""
    if verbose >= 2:
        os.environ[DEBUG_ENV] = "1"
    threshold = "warning" if quiet else "debug" if verbose else "info"
    configure(EventLog(format=log_format, threshold=threshold))


def main(argv: list[str] | None = None) -> int:
    from igny8ctl.errors import ExitCode, Interrupted

    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="igny8ctl", standalone_mode=True)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else ExitCode.USAGE
        if code == ExitCode.INTERRUPTED:
            return _fail(Interrupted("interrupted; committed work stays (fix batches resume on "
                                     "the next run)"))
        return code
    except Igny8Error as error:
        return _fail(error)
    except KeyboardInterrupt:
        return _fail(Interrupted("interrupted"))
    except Exception as error:
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        detail = str(error).splitlines()[0] if str(error) else ""
        return _fail(Igny8Error(f"internal error: {type(error).__name__}: {detail[:300]} "
                                "(rerun with -vv for a traceback)"))
    return ExitCode.OK


def _fail(error: Igny8Error) -> int:
    """The one place an error becomes output: a stderr line, and JSON if it was asked for."""
    from igny8ctl.render import OutputFormat, error_json, requested_format
    from igny8ctl.render.text import printable

    if requested_format() is OutputFormat.JSON:
        sys.stdout.write(error_json(error))
        sys.stdout.flush()
    current().emit("error", printable(error.message), level="error",
                   exit_code=int(error.exit_code), **error.details)
    return int(error.exit_code)
