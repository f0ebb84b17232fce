"""The check report: result types with a stable, versioned dictionary form, and baselines."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from igny8ctl import __version__
from igny8ctl.checks.base import CheckResult, Finding, Severity
from igny8ctl.errors import ConfigError

#: Bump on any incompatible change of ``CheckReport.to_dict``; documented in the README.
REPORT_SCHEMA_VERSION = 1

FAIL_ON_NEVER = "never"


@dataclass(frozen=True)
class CheckReport:
    database: str
    started_at: datetime
    duration_s: float
    results: tuple[CheckResult, ...]
    fail_on: Severity | None
    baseline: str | None = None

    @property
    def failing(self) -> list[Finding]:
        """Findings at or above ``fail_on`` that the baseline does not accept."""
        if self.fail_on is None:
            return []
        return [
            f for r in self.results for f in r.findings
            if f.count and not f.baselined and f.severity.rank >= self.fail_on.rank
        ]

    @property
    def passed(self) -> bool:
        return not self.failing

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "tool": {"name": "igny8ctl", "version": __version__},
            "database": self.database,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "duration_ms": round(self.duration_s * 1000, 1),
            "fail_on": self.fail_on.value if self.fail_on else FAIL_ON_NEVER,
            "baseline": self.baseline,
            "passed": self.passed,
            "checks": [
                {
                    "id": r.info.id,
                    "title": r.info.title,
                    "severity": r.info.severity.value,
                    "status": _status(r),
                    "count": r.count,
                    "duration_ms": round(r.duration_s * 1000, 1),
                    "detail": r.detail,
                    "fix": r.info.fix,
                    "findings": [
                        {
                            "code": f.code,
                            "severity": f.severity.value,
                            "count": f.count,
                            "sample_ids": list(f.sample),
                            "message": f.message,
                            "baselined": f.baselined,
                        }
                        for f in r.findings
                    ],
                }
                for r in self.results
            ],
        }


def _status(result: CheckResult) -> str:
    worst = result.worst(include_baselined=True)
    return "ok" if worst is None or worst is Severity.INFO else worst.value


@dataclass(frozen=True)
class BaselineEntry:
    count: int
    ids: frozenset[int]

    @property
    def complete(self) -> bool:
        return len(self.ids) >= self.count


def load_baseline(path: Path) -> dict[str, BaselineEntry]:
    """Read the findings of a previous ``--format json`` report, keyed ``check:code``."""
    try:
        document = json.loads(path.read_text())
        if document.get("schema_version") != REPORT_SCHEMA_VERSION:
            raise ConfigError(
                f"baseline {path} has report schema_version "
                f"{document.get('schema_version')!r}; expected {REPORT_SCHEMA_VERSION}"
            )
        return {
            f"{check['id']}:{finding['code']}": BaselineEntry(
                int(finding["count"]), frozenset(int(i) for i in finding["sample_ids"])
            )
            for check in document["checks"]
            for finding in check["findings"]
        }
    except OSError as exc:
        raise ConfigError(f"cannot read baseline {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError(f"baseline {path} is not an igny8ctl JSON report") from None


def apply_baseline(
    results: tuple[CheckResult, ...], baseline: dict[str, BaselineEntry]
) -> tuple[CheckResult, ...]:
    """Mark findings the baseline already accepted.

    A finding is known when the baseline has the same check and code, its count is not
    higher, and (when the baseline listed every id) no id is new.
    """

    def known(finding: Finding) -> bool:
        entry = baseline.get(finding.key)
        if entry is None or finding.count > entry.count:
            return False
        if not entry.complete:
            return True
        return len(finding.sample) >= finding.count and set(finding.sample) <= entry.ids

    return tuple(
        replace(r, findings=tuple(
            replace(f, baselined=True) if f.count and known(f) else f for f in r.findings
        ))
        for r in results
    )


def trim_samples(results: tuple[CheckResult, ...], limit: int) -> tuple[CheckResult, ...]:
    """Samples back to ``limit`` ids once a baseline comparison needed more."""
    return tuple(
        replace(r, findings=tuple(replace(f, sample=f.sample[:limit]) for f in r.findings))
        for r in results
    )
