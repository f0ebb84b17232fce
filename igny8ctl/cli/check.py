"""``igny8ctl check``: find every integrity defect in one read-only pass."""

from __future__ import annotations

import io
import json
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from igny8ctl.cli.options import (
    ConfigPath,
    DatabaseUrl,
    Profile,
    load,
    stdout,
    write_atomically,
)
from igny8ctl.render import Format

if TYPE_CHECKING:
    from igny8ctl.checks import Severity
    from igny8ctl.report import CheckReport

app = typer.Typer(help="Run integrity checks (read-only).", no_args_is_help=False)


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
    output_format: Annotated[Format, typer.Option("--format", "-f", help="Report format.")]
    = Format.TABLE,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the report to FILE instead of stdout.", dir_okay=False)]
    = None,
    sample: Annotated[int, typer.Option(
        "--sample", min=0, help="Offending ids to list per finding.")] = 20,
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

    if list_checks:
        catalogue = api.catalogue()
        if output_format is Format.JSON:
            typer.echo(json.dumps([info.__dict__ | {"severity": info.severity.value}
                                   for info in catalogue], indent=2))
        else:
            from igny8ctl.render.human import render_catalogue

            render_catalogue(catalogue, stdout())
        return

    settings = load(database_url, config, profile)
    started = time.perf_counter()
    try:
        report = api.run_checks(
            settings, include=check_ids, exclude=exclude, sample_limit=sample,
            fail_on=severity_of(fail_on), baseline=baseline,
        )
    except Igny8Error:
        if metrics_file:
            write_failed_metrics(metrics_file, "check", time.perf_counter() - started)
        raise
    emit_report(report, output_format, output)
    if record:
        api.record_checks(settings, report)
    if metrics_file:
        from igny8ctl import metrics

        write_atomically(metrics_file, metrics.render(
            "check", report, report.duration_s, report.passed,
            previous=metrics.previous_text(metrics_file)))
    raise typer.Exit(0 if report.passed else 1)


@app.command("history")
def history(
    check_id: Annotated[str | None, typer.Option(
        "--check", "-c", help="Only this check.", show_default=False)] = None,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Recorded runs to show.")] = 30,
    output_format: Annotated[Format, typer.Option("--format", "-f", help="table or json.")]
    = Format.TABLE,
    database_url: DatabaseUrl = None,
    config: ConfigPath = None,
    profile: Profile = None,
) -> None:
    """Trend of each check over the runs recorded with check --record."""
    from igny8ctl import api
    from igny8ctl.render.human import render_trends

    trends = api.check_history(load(database_url, config, profile), check_id, runs)
    if output_format is Format.JSON:
        typer.echo(json.dumps([
            {"check": t.check, "code": t.code, "severity": t.severity,
             "points": [{"at": at.isoformat(), "count": count} for at, count in t.points]}
            for t in trends], indent=2))
    else:
        render_trends(trends, stdout())


def write_failed_metrics(path: Path, job: str, duration_s: float) -> None:
    """Record a run that ended in an error, so an alert on last_run_success fires."""
    from igny8ctl import metrics

    write_atomically(path, metrics.render(job, None, duration_s, False,
                                          previous=metrics.previous_text(path)))


def emit_report(report: CheckReport, output_format: Format, output: Path | None) -> None:
    """The report to stdout or ``--output``; for machine formats, the verdict to stderr."""
    from igny8ctl.render import machine_renderers
    from igny8ctl.render.text import verdict

    if output_format is Format.TABLE:
        from igny8ctl.render.human import render_report

        if output is None:
            render_report(report, stdout())
            return
        from rich.console import Console

        capture = Console(record=True, width=160, file=io.StringIO(), force_terminal=False)
        render_report(report, capture)
        write_atomically(output, capture.export_text())
        return
    text = machine_renderers()[output_format](report)
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_atomically(output, text)
    from igny8ctl.events import current

    current().emit("check.finished", verdict(report),
                   level="info" if report.passed else "warning", passed=report.passed,
                   failing=sum(f.count for f in report.failing),
                   duration_ms=round(report.duration_s * 1000, 1))
