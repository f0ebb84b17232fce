"""Wording shared by every renderer: listings, verdicts, and text made safe to print.

Names, keywords and messages can come from the database, a plan file or a model, so any
of them may hold Rich markup, terminal escapes (ANSI, OSC), newlines or lone surrogates;
``printable`` turns all of those into visible text before anything prints them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from igny8ctl.report import CheckReport

#: Listings name this many items, then "(+N more)".
SHOWN = 10

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def printable(text: str) -> str:
    """``text`` on one line with control characters and lone surrogates shown escaped."""
    return _UNPRINTABLE.sub(_escape, text)


def listing(items: Iterable[object], total: int | None = None, limit: int = SHOWN) -> str:
    """The first ``limit`` items, comma-separated, and "(+N more)" for the rest of ``total``."""
    shown = [str(item) for item in items]
    total = len(shown) if total is None else total
    head = ", ".join(shown[:limit])
    more = total - min(len(shown), limit)
    return head + (f" (+{more} more)" if more > 0 else "")


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
    return listing(sample, count, limit=len(sample)) if sample else ""


def scope_lines(report: CheckReport) -> list[str]:
    """What a ``--tenant`` run covered: the tenants, and the checks with no tenant."""
    if not report.tenants:
        return []
    lines = ["tenants: " + listing((f"{t.slug} (id {t.id})" for t in report.tenants),
                                   len(report.tenants))]
    if report.skipped:
        lines.append("skipped, not tenant-scoped: "
                     + listing((info.id for info in report.skipped), len(report.skipped))
                     + " (name them with --check to run them)")
    whole = [r.info.id for r in report.results if not r.info.tenant_scoped]
    if whole:
        lines.append("not tenant-scoped, so run on the whole database: "
                     + listing(whole, len(whole)))
    return lines


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
