"""``migrate status`` and the outcome of ``apply``/``downgrade``, for a terminal or a pipe."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from igny8ctl.migrations.runner import ApplyResult, MigrationStatus


def render_status(status: MigrationStatus, console: Console) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("database", escape(status.database))
    grid.add_row("revision", f"current {', '.join(status.current) or '(none)'}, "
                             f"head {status.head}, pending {', '.join(status.pending) or '(none)'}")
    column = f"{status.table}.{status.column}"
    grid.add_row("column", f"{escape(column)} " + (
        "[yellow]allows NULL[/]" if status.nullable else "[green]NOT NULL[/]"))
    key = status.foreign_key
    grid.add_row("foreign key", "[yellow]missing[/]" if key is None else escape(key.name) + (
        " [green]valid[/]" if key.validated else " [yellow]NOT VALID[/]"))
    if status.checks:
        grid.add_row("checks", ", ".join(
            escape(c.name) + (" (validated)" if c.validated else " (NOT VALID)")
            for c in status.checks))
    grid.add_row("orphaned users", _count(status.orphaned))
    grid.add_row("dangling users", _count(status.dangling))
    style = "red" if status.refusal else "bold" if status.steps or status.pending else "green"
    grid.add_row("next", f"[{style}]{escape(status.next_action)}[/]")
    console.print(grid, highlight=False)
    if status.steps and not status.refusal and status.pending:
        for number, step in enumerate(status.steps, 1):
            console.print(f"  {number}. {escape(step.title)}", highlight=False)
            for statement in step.statements:
                console.print(f"     [dim]{escape(statement)};[/]", highlight=False)


def render_run(result: ApplyResult, console: Console) -> None:
    for number, run in enumerate(result.steps, 1):
        attempts = f" after {run.attempts} attempts" if run.attempts > 1 else ""
        console.print(f"  {number}. {escape(run.title)}  [dim]{run.duration_s * 1000:.0f} ms"
                      f"{attempts}[/]", highlight=False)
    console.print(_verdict(result), highlight=False)


def _verdict(result: ApplyResult) -> str:
    seconds = f"{result.duration_s:.1f} s"
    if not result.complete:
        return (f"[yellow]stopped after {len(result.steps)} step(s) as asked, "
                f"{result.remaining} left: run igny8ctl migrate apply again to finish[/]")
    if result.direction == "downgrade":
        if not result.changed:
            return "nothing to downgrade: the revision is not applied"
        return (f"[yellow]downgraded in {seconds}: the column accepts NULL again; the foreign "
                "key stays[/]")
    if not result.changed:
        return f"[green]nothing to do: revision {', '.join(result.after)} is already applied[/]"
    if not result.steps:
        return (f"[green]recorded revision {', '.join(result.after)}: the database already "
                "enforced it[/]")
    return (f"[green]applied revision {', '.join(result.after)} in {seconds}: every user must "
            "now have an account[/]")


def _count(value: int) -> str:
    return f"[red]{value}[/]" if value else "0"
