"""The verbs of igny8ctl as plain functions: the CLI is a thin adapter over these."""

from __future__ import annotations

import fnmatch
import time
from datetime import UTC, datetime
from pathlib import Path

from igny8ctl.checks import REGISTRY, Check, CheckInfo, CheckResult, Severity
from igny8ctl.checks.base import CheckContext
from igny8ctl.config import Settings
from igny8ctl.db import create_engine, display_url, read_only, reflect
from igny8ctl.errors import ConfigError
from igny8ctl.report import CheckReport, apply_baseline, load_baseline


def catalogue() -> list[CheckInfo]:
    return [check.info() for check in REGISTRY]


def select_checks(include: list[str] | None = None,
                  exclude: list[str] | None = None) -> list[type[Check]]:
    """Checks by id or glob (``users.*``); an unknown id is an error, not an empty run."""
    ids = [check.id for check in REGISTRY]

    def matching(pattern: str) -> set[str]:
        found = set(fnmatch.filter(ids, pattern))
        if not found:
            raise ConfigError(f"unknown check {pattern!r} (see igny8ctl check --list)")
        return found

    chosen = set().union(*(matching(p) for p in include)) if include else set(ids)
    for pattern in exclude or []:
        chosen -= matching(pattern)
    return [check for check in REGISTRY if check.id in chosen]


def run_checks(
    settings: Settings,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    sample_limit: int = 20,
    fail_on: Severity | None = Severity.ERROR,
    baseline: Path | None = None,
) -> CheckReport:
    """Run the selected checks in one read-only snapshot and return the report."""
    checks = select_checks(include, exclude)
    accepted = load_baseline(baseline) if baseline else None
    engine = create_engine(settings)
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    results: list[CheckResult] = []
    with read_only(engine, settings) as connection:
        context = CheckContext(connection, reflect(connection, settings), settings,
                               sample_limit)
        for check in checks:
            check_started = time.perf_counter()
            outcome = check().run(context)
            results.append(CheckResult(check.info(), tuple(outcome.findings),
                                       time.perf_counter() - check_started, outcome.detail))
    outcome_results = tuple(results)
    if accepted is not None:
        outcome_results = apply_baseline(outcome_results, accepted)
    return CheckReport(
        database=display_url(engine.url),
        started_at=started_at,
        duration_s=time.perf_counter() - started,
        results=outcome_results,
        fail_on=fail_on,
        baseline=str(baseline) if baseline else None,
    )


def demo(path: Path, force: bool = False) -> tuple[Settings, CheckReport]:
    """Build the sandbox and check it; the defects are the point, so this never fails on them."""
    from igny8ctl.demo import create_demo_database

    create_demo_database(path, force=force)
    settings = Settings(database_url=f"sqlite:///{path}", url_source="demo")
    return settings, run_checks(settings)
