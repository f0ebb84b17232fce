"""``igny8ctl check``: find every integrity defect in one read-only pass."""

from __future__ import annotations

import time
from enum import StrEnum
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
    from igny8ctl.checks import Severity
    from igny8ctl.report import CheckReport

app = typer.Typer(help="Run integrity checks (read-only).", no_args_is_help=False)

#: What each command of this group can print; a test holds the renderer registry to it.
FORMATS = {
    "check.report": tuple(OutputFormat),
    "check.catalogue": (OutputFormat.TABLE, OutputFormat.JSON),
    "check.history": (OutputFormat.TABLE, OutputFormat.JSON),
}


class FailOn(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    NEVER = "never"


def severity_of(fail_on: FailOn) -> Severity | None:
    from igny8ctl.checks import Severity

    return None if fail_on is FailOn.NEVER else Severity(fail_on.value)


MetricsFile = Annotated[Path | None, typer.Option(
    "--metrics-file", help="Write Prometheus textfile metrics here (atomically).",
    dir_okay=False, show_default=False)]


@app.callback(invoke_without_command=True)
def check(
    ctx: typer.Context,
    database_url: DatabaseUrl = None,
    config: ConfigPath = None,
    profile: Profile = None,
    check_ids: Annotated[list[str] | None, typer.Option(
        "--check", "-c", help="Run only this check id or glob (repeatable).")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", "-x", help="Skip this check id or glob (repeatable).")] = None,
    tenants: Annotated[list[str] | None, typer.Option(
        "--tenant", "-t", help="Only this account's rows, by slug or id (repeatable); checks "
        "with no tenant are skipped unless --check names them.", show_default=False)] = None,
    output_format: FormatOption = OutputFormat.TABLE,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the report to FILE instead of stdout.", dir_okay=False)]
    = None,
    sample: Annotated[int, typer.Option(
        "--sample", min=0, max=10_000, help="Offending ids to list per finding.")] = 20,
    fail_on: Annotated[FailOn, typer.Option(
        "--fail-on", help="Exit 1 when findings at or above this severity remain.")]
    = FailOn.ERROR,
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", help="A previous JSON report: fail only on findings not in it.",
        dir_okay=False)] = None,
    list_checks: Annotated[bool, typer.Option(
        "--list", help="Print the check catalogue and exit.")] = False,
    record: Annotated[bool, typer.Option(
        "--record", help="Store this run's counts in igny8ctl_check_runs (check history).")]
    = False,
    metrics_file: MetricsFile = None,
) -> None:
    """Run integrity checks. Exit 0 clean, 1 findings, 2 usage, 3 database/schema."""
    if ctx.invoked_subcommand is not None:
        return
    from igny8ctl import api
    from igny8ctl.errors import Igny8Error
    from igny8ctl.render import emit

    output_format = output_format_of(output_format)
    if list_checks:
        emit(api.catalogue(), output_format, output)
        return

    if tenants and (record or metrics_file):
        from igny8ctl.errors import ConfigError

        raise ConfigError(f"{'--record' if record else '--metrics-file'} stores whole-database "
                          "counts: it cannot be combined with --tenant", key="--tenant")
    for target, option in ((output, "--output"), (metrics_file, "--metrics-file")):
        if target is not None:
            from igny8ctl.outputs import check_target

            check_target(target, option)
    settings = load(database_url, config, profile)
    started = time.perf_counter()
    try:
        report = api.run_checks(
            settings, include=check_ids, exclude=exclude, sample_limit=sample,
            fail_on=severity_of(fail_on), baseline=baseline, tenants=tenants,
        )
    except Igny8Error:
        if metrics_file:
            write_failed_metrics(metrics_file, "check", time.perf_counter() - started)
        raise
    emit(report, output_format, output)
    if record:
        api.record_checks(settings, report)
    if metrics_file:
        from igny8ctl import metrics
        from igny8ctl.outputs import write_output

        write_output(metrics_file, metrics.render(
            "check", report, report.duration_s, report.passed,
            previous=metrics.previous_text(metrics_file)), "--metrics-file")
    if output_format is not OutputFormat.TABLE:
        announce(report)
    raise typer.Exit(ExitCode.OK if report.passed else ExitCode.FINDINGS)


@app.command("history")
def history(
    check_id: Annotated[str | None, typer.Option(
        "--check", "-c", help="Only this check.", show_default=False)] = None,
    runs: Annotated[int, typer.Option("--runs", min=1, max=10_000,
                                      help="Recorded runs to show.")] = 30,
    output_format: FormatOption = OutputFormat.TABLE,
    database_url: DatabaseUrl = None,
    config: ConfigPath = None,
    profile: Profile = None,
) -> None:
    """Trend of each check over the runs recorded with check --record."""
    from igny8ctl import api
    from igny8ctl.render import emit

    output_format = output_format_of(output_format)
    emit(api.check_history(load(database_url, config, profile), check_id, runs), output_format)


def write_failed_metrics(path: Path, job: str, duration_s: float) -> None:
    """Record a run that ended in an error, so an alert on last_run_success fires."""
    from igny8ctl import metrics
    from igny8ctl.outputs import write_output

    write_output(path, metrics.render(job, None, duration_s, False,
                                      previous=metrics.previous_text(path)), "--metrics-file")


def announce(report: CheckReport) -> None:
    """The one-line verdict on stderr, for machine formats whose stdout is the report."""
    from igny8ctl.events import current
    from igny8ctl.render.text import verdict

    current().emit("check.finished", verdict(report),
                   level="info" if report.passed else "warning", passed=report.passed,
                   failing=sum(f.count for f in report.failing),
                   duration_ms=round(report.duration_s * 1000, 1))
