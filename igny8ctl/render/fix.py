"""Plans, results and journal history of fixes, for a terminal or as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from igny8ctl.render.text import sample_text

if TYPE_CHECKING:
    from igny8ctl.api import UndoPlan
    from igny8ctl.fixes.base import FixResult, Plan
    from igny8ctl.journal.runs import RunSummary

_ACTION_STYLE = {"insert": "green", "update": "yellow", "delete": "red"}


def _table(console: Console, *headers: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD if console.is_terminal else None, show_edge=False,
                  pad_edge=False)
    for header in headers:
        table.add_column(header, justify="right" if header in ("rows", "count") else "left",
                         no_wrap=header in ("run", "job", "rows", "action"))
    return table


def plan_dict(plan: Plan) -> dict[str, Any]:
    return {"fix": plan.fix, "params": plan.params, "targets": plan.targets,
            "changes": [asdict(change) | {"sample": list(change.sample)}
                        for change in plan.changes],
            "blockers": list(plan.blockers), "notes": list(plan.notes)}


def render_plan(plan: Plan, console: Console) -> None:
    if plan.empty and not plan.blockers:
        console.print(f"{plan.fix}: nothing to repair.", highlight=False)
    else:
        table = _table(console, "action", "table", "rows", "sample ids", "what")
        for change in plan.changes:
            style = _ACTION_STYLE.get(change.action, "")
            table.add_row(f"[{style}]{change.action}[/]", escape(change.table),
                          str(change.count), sample_text(change.sample, change.count),
                          escape(change.description))
        console.print(f"[bold]{plan.fix}[/]: {plan.targets} row(s) to repair", highlight=False)
        console.print(table)
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    for blocker in plan.blockers:
        console.print(f"[red]blocked:[/] {escape(blocker)}", highlight=False)


def result_dict(result: FixResult) -> dict[str, Any]:
    return {"plan": plan_dict(result.plan), "run_id": result.run_id,
            "rows_changed": result.rows_changed, "batches": result.batches,
            "remaining": result.remaining}


def render_result(result: FixResult, console: Console) -> None:
    if result.run_id is None:
        console.print(f"{result.plan.fix}: nothing to repair.", highlight=False)
    else:
        batches = f" in {result.batches} batches" if result.batches > 1 else ""
        console.print(f"[green]applied[/] {result.plan.fix}: {result.rows_changed} row(s) "
                      f"changed{batches}, journaled as run [bold]{result.run_id}[/] "
                      f"(undo: igny8ctl fix undo {result.run_id})", highlight=False)
    for note in result.plan.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    style = "green" if result.remaining == 0 else "red"
    console.print(f"[{style}]re-check: {result.remaining} finding row(s) remain[/]",
                  highlight=False)


def runs_json(runs: list[RunSummary]) -> str:
    return json.dumps([asdict(run) for run in runs], indent=2, default=str) + "\n"


def render_history(runs: list[RunSummary], console: Console) -> None:
    if not runs:
        console.print("No journaled runs.")
        return
    table = _table(console, "run", "job", "status", "rows", "started", "by", "undo")
    for run in runs:
        undo = (f"undone by {run.undone_by}" if run.undone_by
                else f"undoes {run.undoes}" if run.undoes else "")
        table.add_row(run.run_id, run.job, run.status, str(run.rows_changed),
                      run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                      f"{run.operator}@{run.host}", undo)
    console.print(table)


def render_undo_plan(plan: UndoPlan, console: Console) -> None:
    run = plan.run
    console.print(f"[bold]undo {run.run_id}[/] ({run.job}, {run.rows_changed} row(s), "
                  f"{escape(run.command)})", highlight=False)
    table = _table(console, "step", "restores", "table", "rows")
    reverse = {"insert": "delete", "update": "update", "delete": "insert"}
    for step in plan.steps:
        table.add_row(str(step.step), reverse[step.action], step.table, str(step.rows))
    console.print(table)
    for table_name, ids in plan.conflicts:
        console.print(f"[red]changed since:[/] {table_name} ids {', '.join(map(str, ids))}",
                      highlight=False)
