"""The terminal report: a Rich table on a terminal, plain columns when piped."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from igny8ctl.checks import CheckInfo
from igny8ctl.history import Trend
from igny8ctl.render.text import finding_rows, verdict
from igny8ctl.report import CheckReport

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan", "ok": "green"}


def render_report(report: CheckReport, console: Console) -> None:
    table = Table(box=box.SIMPLE_HEAD if console.is_terminal else None,
                  show_edge=False, pad_edge=False)
    for header, justify in (("check", "left"), ("finding", "left"), ("severity", "left"),
                            ("count", "right"), ("sample ids", "left")):
        table.add_column(header, justify=justify, no_wrap=header in ("check", "count"))  # type: ignore[arg-type]
    for check, finding, severity, count, sample in finding_rows(report):
        style = _STYLE.get(severity.split()[0], "")
        table.add_row(check, finding, f"[{style}]{severity}[/]", count, sample)
    console.print(table)
    style = "bold green" if report.passed else "bold red"
    console.print(f"[{style}]{verdict(report)}[/]", highlight=False)


def render_catalogue(catalogue: list[CheckInfo], console: Console) -> None:
    for info in catalogue:
        console.print(f"[bold]{info.id}[/]  [{_STYLE[info.severity.value]}]"
                      f"{info.severity.value}[/]  {info.title}", highlight=False)
        for line in info.rationale.splitlines():
            console.print(f"    {line}", highlight=False, markup=False)
        console.print()


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(counts: list[int]) -> str:
    top = max(counts, default=0)
    if top == 0:
        return _BARS[0] * len(counts)
    return "".join(_BARS[round(c / top * (len(_BARS) - 1))] for c in counts)


def render_trends(trends: list[Trend], console: Console) -> None:
    if not trends:
        console.print("No recorded runs: record them with igny8ctl check --record.")
        return
    table = Table(box=box.SIMPLE_HEAD if console.is_terminal else None, show_edge=False,
                  pad_edge=False)
    for header in ("check", "finding", "severity", "runs", "first", "latest", "trend"):
        table.add_column(header, justify="right" if header in ("runs", "first", "latest")
                         else "left", no_wrap=True)
    for trend in trends:
        counts = [count for _, count in trend.points]
        style = _STYLE.get(trend.severity, "")
        table.add_row(trend.check, trend.code, f"[{style}]{trend.severity}[/]",
                      str(len(counts)), str(counts[0]), str(counts[-1]), sparkline(counts))
    console.print(table)
