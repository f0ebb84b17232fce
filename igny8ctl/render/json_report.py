"""JSON documents of the check family: report, catalogue and history."""

from __future__ import annotations

from typing import TYPE_CHECKING

from igny8ctl.render import dumps

if TYPE_CHECKING:
    from igny8ctl.history import CheckHistory
    from igny8ctl.report import Catalogue, CheckReport


def render(report: CheckReport) -> str:
    return dumps(report.KIND, report.to_dict())


def catalogue(catalogue: Catalogue) -> str:
    return dumps(catalogue.KIND, {"checks": [
        {"id": info.id, "title": info.title, "severity": info.severity.value,
         "rationale": info.rationale, "fix": info.fix, "tenant_scoped": info.tenant_scoped}
        for info in catalogue.checks]})


def trends(history: CheckHistory) -> str:
    return dumps(history.KIND, {"trends": [
        {"check": t.check, "code": t.code, "severity": t.severity,
         "points": [{"at": at.isoformat(), "count": count} for at, count in t.points]}
        for t in history.trends]})
