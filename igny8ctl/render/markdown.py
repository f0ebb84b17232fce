"""Markdown for CI job summaries (GitHub's $GITHUB_STEP_SUMMARY, GitLab notes)."""

from __future__ import annotations

from igny8ctl.render.text import finding_rows, verdict
from igny8ctl.report import CheckReport


def render(report: CheckReport) -> str:
    lines = [
        "### igny8ctl check",
        "",
        f"**{verdict(report)}**",
        "",
        "| check | finding | severity | count | sample |",
        "|---|---|---|---:|---|",
    ]
    for row in finding_rows(report):
        cells = [cell.replace("|", "\\|") for cell in row]
        lines.append("| `" + cells[0] + "` | " + " | ".join(cells[1:]) + " |")
    return "\n".join(lines) + "\n"
