"""Wording shared by the human renderers (terminal table, markdown)."""

from __future__ import annotations

from igny8ctl.report import CheckReport


def finding_rows(report: CheckReport) -> list[tuple[str, str, str, str, str]]:
    """(check, finding, severity, count, sample) rows: each finding with rows, or ``ok``."""
    rows = []
    for result in report.results:
        shown = [f for f in result.findings if f.count]
        if not shown:
            rows.append((result.info.id, result.detail or result.info.title, "ok", "0", ""))
        for f in shown:
            severity = f.severity.value + (" (baselined)" if f.baselined else "")
            rows.append((result.info.id, f.message, severity, str(f.count),
                         sample_text(f.sample, f.count)))
    return rows


def sample_text(sample: tuple[int, ...], count: int) -> str:
    if not sample:
        return ""
    more = count - len(sample)
    return ", ".join(map(str, sample)) + (f" (+{more} more)" if more > 0 else "")


def verdict(report: CheckReport) -> str:
    failing = report.failing
    elapsed = f"{report.duration_s:.2f}s"
    checks = len(report.results)
    if report.fail_on is None:
        total = sum(r.count for r in report.results)
        return f"{total} finding(s) in {checks} checks; --fail-on never, {elapsed}"
    if not failing:
        return f"OK: no findings at or above {report.fail_on.value} in {checks} checks, {elapsed}"
    rows = sum(f.count for f in failing)
    failed_checks = len({f.check for f in failing})
    return (f"FAIL: {rows} row(s) in {failed_checks} of {checks} checks at or above "
            f"{report.fail_on.value}, {elapsed}")
