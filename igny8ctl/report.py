"""The check report: result types with a stable, versioned dictionary form, and baselines."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from igny8ctl.checks.base import CheckInfo, CheckResult, Finding, Severity
from igny8ctl.errors import ConfigError

if TYPE_CHECKING:
    from igny8ctl.tenants import Tenant

#: Report versions ``--baseline`` reads: 1 (before the shared envelope) and the current one.
BASELINE_VERSIONS = (1, 2)

FAIL_ON_NEVER = "never"
NOT_TENANT_SCOPED = "not tenant-scoped"


@dataclass(frozen=True)
class CheckReport:
    KIND: ClassVar[str] = "check.report"

    database: str
    started_at: datetime
    duration_s: float
    results: tuple[CheckResult, ...]
    fail_on: Severity | None
    baseline: str | None = None
    #: The accounts a ``--tenant`` run was restricted to; empty for the whole database.
    tenants: tuple[Tenant, ...] = ()
    #: Checks a ``--tenant`` run left out because their rows have no tenant.
    skipped: tuple[CheckInfo, ...] = ()

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
            "database": self.database,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "duration_ms": round(self.duration_s * 1000, 1),
            "fail_on": self.fail_on.value if self.fail_on else FAIL_ON_NEVER,
            "baseline": self.baseline,
            "passed": self.passed,
            "tenants": [{"id": t.id, "slug": t.slug} for t in self.tenants]
            if self.tenants else None,
            "skipped": [{"id": info.id, "title": info.title, "reason": NOT_TENANT_SCOPED}
                        for info in self.skipped],
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


#: Largest count or id a baseline may hold: PostgreSQL's bigint.
BIGINT_MAX = 2**63 - 1
#: A baseline larger than this is not a report igny8ctl wrote.
BASELINE_MAX_BYTES = 256 * 1024 * 1024


def load_baseline(path: Path) -> dict[str, BaselineEntry]:
    """Read the findings of a previous ``--format json`` report, keyed ``check:code``.

    The file is untrusted input: every count and id must be an integer within bigint.
    """
    invalid = ConfigError(f"baseline {path} is not an igny8ctl JSON check report",
                          key="--baseline")
    try:
        if path.stat().st_size > BASELINE_MAX_BYTES:
            raise invalid
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read baseline {path}: {exc.strerror}",
                          key="--baseline") from None
    except (ValueError, RecursionError):
        raise invalid from None
    if not isinstance(document, dict) or not isinstance(document.get("checks"), list):
        raise invalid
    if document.get("schema_version") not in BASELINE_VERSIONS or document.get(
            "kind", "check.report") != "check.report":
        raise ConfigError(
            f"baseline {path} is not an igny8ctl check report of schema_version "
            f"{' or '.join(map(str, BASELINE_VERSIONS))}", key="--baseline")
    entries = {}
    for check in document["checks"]:
        findings = check.get("findings") if isinstance(check, dict) else None
        if not isinstance(findings, list) or not isinstance(check.get("id"), str):
            raise invalid
        for finding in findings:
            if not isinstance(finding, dict) or not isinstance(finding.get("code"), str):
                raise invalid
            count, ids = finding.get("count"), finding.get("sample_ids")
            if not isinstance(count, int) or not _bigint(count) or not isinstance(ids, list) \
                    or not all(map(_bigint, ids)):
                raise ConfigError(f"baseline {path}: {check['id']}:{finding['code']} has a "
                                  "count or id that is not an integer between 0 and "
                                  f"{BIGINT_MAX}", key="--baseline")
            entries[f"{check['id']}:{finding['code']}"] = BaselineEntry(count, frozenset(ids))
    return entries


def _bigint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= BIGINT_MAX


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


@dataclass(frozen=True)
class Catalogue:
    """What ``check --list`` prints."""

    KIND: ClassVar[str] = "check.catalogue"

    checks: tuple[CheckInfo, ...]
