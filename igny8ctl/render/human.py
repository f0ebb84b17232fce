"""The check family for people: a Rich table on a terminal, plain columns when piped."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from igny8ctl.render.text import finding_rows, printable, scope_lines, verdict

if TYPE_CHECKING:
    from igny8ctl.history import CheckHistory
    from igny8ctl.report import Catalogue, CheckReport

STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan", "ok": "green"}


def safe(text: str) -> str:
    """Text from outside (names, messages) as Rich markup that prints it literally."""
    return escape(printable(text))


def table(console: Console, *headers: str, right: tuple[str, ...] = (),
          no_wrap: tuple[str, ...] = ()) -> Table:
    """A table with igny8ctl's look: boxed on a terminal, plain columns in a pipe."""
    grid = Table(box=box.SIMPLE_HEAD if console.is_terminal else None, show_edge=False,
                 pad_edge=False)
    for header in headers:
        grid.add_column(header, justify="right" if header in right else "left",
                        no_wrap=header in no_wrap)
    return grid


def render_report(report: CheckReport, console: Console) -> None:
    rows = table(console, "check", "finding", "severity", "count", "sample ids",
                 right=("count",), no_wrap=("check", "count"))
    for check, finding, severity, count, sample in finding_rows(report):
        style = STYLE.get(severity.split()[0], "")
        rows.add_row(safe(check), safe(finding), f"[{style}]{severity}[/]", count, sample)
    console.print(rows)
    for line in scope_lines(report):
        console.print(safe(line), highlight=False)
    style = "bold green" if report.passed else "bold red"
    console.print(f"[{style}]{safe(verdict(report))}[/]", highlight=False)


def render_catalogue(catalogue: Catalogue, console: Console) -> None:
    for info in catalogue.checks:
        scope = "" if info.tenant_scoped else "  (not tenant-scoped)"
        console.print(f"[bold]{info.id}[/]  [{STYLE[info.severity.value]}]"
                      f"{info.severity.value}[/]  {safe(info.title)}{scope}", highlight=False)
        for line in info.rationale.splitlines():
            console.print(f"    {line}", highlight=False, markup=False)
        console.print()


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(counts: list[int]) -> str:
    top = max(counts, default=0)
    if top == 0:
        return _BARS[0] * len(counts)
    return "".join(_BARS[round(c / top * (len(_BARS) - 1))] for c in counts)


def render_trends(history: CheckHistory, console: Console) -> None:
    if not history.trends:
        console.print("No recorded runs: record them with igny8ctl check --record.")
        return
    headers = ("check", "finding", "severity", "runs", "first", "latest", "trend")
    rows = table(console, *headers, right=("runs", "first", "latest"), no_wrap=headers)
    for trend in history.trends:
        counts = [count for _, count in trend.points]
        style = STYLE.get(trend.severity, "")
        rows.add_row(safe(trend.check), safe(trend.code), f"[{style}]{safe(trend.severity)}[/]",
                     str(len(counts)), str(counts[0]), str(counts[-1]), sparkline(counts))
    console.print(rows)
