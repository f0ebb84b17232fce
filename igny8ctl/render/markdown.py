"""Markdown for CI job summaries (GitHub's $GITHUB_STEP_SUMMARY, GitLab notes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from igny8ctl.render.text import finding_rows, printable, scope_lines, verdict

if TYPE_CHECKING:
    from igny8ctl.report import CheckReport


def render(report: CheckReport) -> str:
    lines = [
        "### igny8ctl check",
        "",
        f"**{cell_text(verdict(report))}**",
        "",
        *(line for scope in scope_lines(report) for line in (inline_text(scope), "")),
        "| check | finding | severity | count | sample |",
        "|---|---|---|---:|---|",
    ]
    for row in finding_rows(report):
        cells = [cell_text(cell) for cell in row]
        lines.append("| `" + cells[0] + "` | " + " | ".join(cells[1:]) + " |")
    return "\n".join(lines) + "\n"


def cell_text(text: str) -> str:
    """Text from outside as one Markdown table cell: no pipes, no HTML, one line."""
    return (printable(text).replace("\\", "\\\\").replace("|", "\\|")
            .replace("<", "&lt;").replace(">", "&gt;").replace("`", "\\`"))


_INLINE = str.maketrans({char: "\\" + char for char in "\\`*_[]|~"}
                        | {"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def inline_text(text: str) -> str:
    """Text from outside as inline Markdown shown literally: one line, and no emphasis,
    link, code, HTML, entity or table cell boundary it could open."""
    return printable(text).translate(_INLINE)
