"""Prometheus node-exporter textfile output, replaced atomically."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path

from igny8ctl.report import CheckReport

_LAST_SUCCESS = re.compile(
    r'^igny8ctl_last_success_timestamp_seconds\{job="(?P<job>[^"]+)"\} (?P<value>\S+)$', re.M)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(job: str, report: CheckReport | None, duration_s: float, success: bool,
           repaired: Iterable[tuple[str, int]] = (), previous: str = "") -> str:
    """The textfile for one run. The last success time survives failed runs; a run that
    failed before it could check (``report`` None) still records that it failed."""
    now = time.time()
    last_success = now if success else next(
        (float(m["value"]) for m in _LAST_SUCCESS.finditer(previous) if m["job"] == job), 0.0)
    lines = [
        "# HELP igny8ctl_check_findings Rows found by an igny8ctl check in the last run.",
        "# TYPE igny8ctl_check_findings gauge",
    ]
    for result in report.results if report else ():
        for finding in result.findings:
            lines.append(
                f'igny8ctl_check_findings{{check="{_label(finding.check)}",'
                f'code="{_label(finding.code)}",severity="{finding.severity.value}"}} '
                f"{finding.count}")
    lines += [
        "# HELP igny8ctl_repaired_rows Rows changed by each repair in the last run.",
        "# TYPE igny8ctl_repaired_rows gauge",
        *(f'igny8ctl_repaired_rows{{job="{_label(job)}",fix="{_label(fix)}"}} {rows}'
          for fix, rows in repaired),
        "# HELP igny8ctl_run_duration_seconds Wall time of the last run.",
        "# TYPE igny8ctl_run_duration_seconds gauge",
        f'igny8ctl_run_duration_seconds{{job="{_label(job)}"}} {duration_s:.3f}',
        "# HELP igny8ctl_last_run_timestamp_seconds When the last run ended.",
        "# TYPE igny8ctl_last_run_timestamp_seconds gauge",
        f'igny8ctl_last_run_timestamp_seconds{{job="{_label(job)}"}} {now:.3f}',
        "# HELP igny8ctl_last_success_timestamp_seconds When a run last ended clean.",
        "# TYPE igny8ctl_last_success_timestamp_seconds gauge",
        f'igny8ctl_last_success_timestamp_seconds{{job="{_label(job)}"}} {last_success:.3f}',
        "# HELP igny8ctl_last_run_success Whether the last run ended clean (1) or not (0).",
        "# TYPE igny8ctl_last_run_success gauge",
        f'igny8ctl_last_run_success{{job="{_label(job)}"}} {int(success)}',
    ]
    return "\n".join(lines) + "\n"


def previous_text(path: Path) -> str:
    """The last textfile, to carry its last-success time over; only ever a regular file
    (reading a FIFO or a device would block or read garbage)."""
    try:
        return path.read_text(errors="replace") if path.is_file() else ""
    except OSError:
        return ""

