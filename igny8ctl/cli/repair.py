"""``igny8ctl repair``: the scheduled job. Check, repair what the policy allows, re-check."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from igny8ctl.cli.check import FailOn, MetricsFile, severity_of, write_failed_metrics
from igny8ctl.cli.options import ConfigPath, DatabaseUrl, Profile, load
from igny8ctl.errors import ExitCode


def repair(
    database_url: DatabaseUrl = None,
    config: ConfigPath = None,
    profile: Profile = None,
    fail_on: Annotated[FailOn, typer.Option(
        "--fail-on", help="Exit 1 when findings at or above this severity remain.")]
    = FailOn.ERROR,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, help="Commit repairs every N rows.")] = 10_000,
    metrics_file: MetricsFile = None,
) -> None:
    """Check, apply the repairs the policy allows, check again. Quiet when all is well.

    Without a [repair] policy: orphaned and dangling users get an account each, cluster
    counts are recomputed; nothing is deleted. Exit 0 clean, 1 findings remain, 4 another
    run holds the lock.
    """
    from igny8ctl import api, metrics
    from igny8ctl.errors import Igny8Error
    from igny8ctl.events import current

    log = current()
    settings = load(database_url, config, profile)
    started = time.perf_counter()

    def announce(done: api.Repair) -> None:
        result = done.result
        log.emit("repair.applied",
                 f"repaired {done.fix} ({done.action}): {result.rows_changed} row(s) changed, "
                 f"run {result.run_id}", fix=done.fix, action=done.action,
                 rows=result.rows_changed, run_id=result.run_id, remaining=result.remaining)

    try:
        outcome = api.repair(settings, severity_of(fail_on), batch_size, announce)
    except Igny8Error:
        if metrics_file:
            write_failed_metrics(metrics_file, "repair", time.perf_counter() - started)
        raise
    duration = time.perf_counter() - started
    for finding in outcome.after.failing:
        log.emit("repair.remaining",
                 f"{finding.check}: {finding.count} {finding.message} remain "
                 f"(ids {', '.join(map(str, finding.sample)) or '-'})", level="warning",
                 check=finding.check, code=finding.code, severity=finding.severity.value,
                 count=finding.count)
    log.emit("repair.finished",
             "repair finished: " + ("clean" if outcome.passed else "findings remain"),
             level="debug" if outcome.passed and not outcome.repairs else "info",
             passed=outcome.passed, repairs=len(outcome.repairs),
             duration_ms=round(duration * 1000, 1))
    if metrics_file:
        from igny8ctl.outputs import write_output

        write_output(metrics_file, metrics.render(
            "repair", outcome.after, duration, outcome.passed,
            [(r.fix, r.result.rows_changed) for r in outcome.repairs],
            metrics.previous_text(metrics_file)), "--metrics-file")
    raise typer.Exit(ExitCode.OK if outcome.passed else ExitCode.FINDINGS)

