from __future__ import annotations

import json

from igny8ctl.report import CheckReport


def render(report: CheckReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"
