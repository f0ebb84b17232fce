"""The ``igny8ctl`` entry point and the one place exceptions become messages and exit codes."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback
from typing import Annotated

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from igny8ctl import __version__
from igny8ctl.errors import Igny8Error
from igny8ctl.events import EventLog, LogFormat, configure, current

#: Command name -> (module, attribute, is a group). A run imports only the module of the
#: command it invokes; help, completion and unknown commands load them all.
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "demo": ("igny8ctl.cli.demo", "demo", False),
    "check": ("igny8ctl.cli.check", "app", True),
    "fix": ("igny8ctl.cli.fix", "app", True),
    "migrate": ("igny8ctl.cli.migrate", "app", True),
    "cluster": ("igny8ctl.cli.cluster", "app", True),
    "doctor": ("igny8ctl.cli.doctor", "app", True),
    "repair": ("igny8ctl.cli.repair", "repair", False),
}
#: Root options that take a value, so the value is not mistaken for the command.
_VALUED_OPTIONS = ("--log-format",)
_COMPLETION_ENV = "_IGNY8CTL_COMPLETE"

DEBUG_ENV = "IGNY8CTL_DEBUG"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"igny8ctl {__version__}")
        raise typer.Exit()


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


def build_app(names: list[str]) -> typer.Typer:
    """The command line with the named commands (in ``COMMANDS`` order) registered."""
    app = typer.Typer(
        name="igny8ctl",
        help="Administration and data-integrity toolkit for igny8 databases.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(root)
    for name in COMMANDS:
        if name not in names:
            continue
        module, attribute, group = COMMANDS[name]
        target = getattr(importlib.import_module(module), attribute)
        if group:
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
    return app


def invoked_command(argv: list[str]) -> str | None:
    """The command word of ``argv`` (after root options), if it names a known command."""
    args = iter(argv)
    for arg in args:
        if arg in _VALUED_OPTIONS:
            next(args, None)
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    from igny8ctl.errors import ExitCode, Interrupted

    # SIGTERM (systemd stopping a unit, a CI timeout) ends a run like Ctrl-C: finally blocks
    # run, locks are released, the open transaction rolls back.
    signal.signal(signal.SIGTERM, _terminated)
    argv = sys.argv[1:] if argv is None else argv
    name = None if os.environ.get(_COMPLETION_ENV) else invoked_command(argv)
    command = typer.main.get_command(build_app([name] if name else list(COMMANDS)))
    try:
        code = command.main(args=argv, prog_name="igny8ctl", standalone_mode=False)
    except NoArgsIsHelpError as usage:
        usage.show()
        return ExitCode.USAGE
    except ClickException as usage:
        hint = f" (see igny8ctl {name or ''} --help)".replace("  ", " ")
        return _fail(Igny8Error(usage.format_message().rstrip(".") + hint))
    except typer.Abort:
        return _fail(Interrupted("interrupted"))
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
    if code == ExitCode.INTERRUPTED:
        return _fail(Interrupted("interrupted; committed work stays (fix batches resume on "
                                 "the next run)"))
    return code if isinstance(code, int) else ExitCode.OK


def _terminated(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


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
