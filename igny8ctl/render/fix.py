"""Plans, results, undo and journal history of fixes, for a terminal or as enveloped JSON.

The JSON of a plan is the plan itself: what a preview prints with ``--format json`` is what
``--save-plan`` writes and ``fix apply FILE`` reads.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from igny8ctl.render import dumps
from igny8ctl.render.text import sample_text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from igny8ctl.fixes.base import FixResult, Plan
    from igny8ctl.journal.undo import FixHistory, UndoPlan, UndoResult

_ACTION_STYLE = {"insert": "green", "update": "yellow", "delete": "red"}


def _table(console: Console, *headers: str) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD if console.is_terminal else None, show_edge=False,
                  pad_edge=False)
    for header in headers:
        table.add_column(header, justify="right" if header in ("rows", "count") else "left",
                         no_wrap=header in ("run", "job", "rows", "action"))
    return table


def _escape(text: str) -> str:
    from igny8ctl.render.human import safe

    return safe(text)


def plan_json(plan: Plan) -> str:
    from igny8ctl.fixes.runner import plan_body

    return dumps(plan.KIND, plan_body(plan))


def render_plan(plan: Plan, console: Console) -> None:
    if plan.empty and not plan.blockers:
        console.print(f"{plan.fix}: nothing to repair.", highlight=False)
    else:
        table = _table(console, "action", "table", "rows", "sample ids", "what")
        for change in plan.changes:
            style = _ACTION_STYLE.get(change.action, "")
            table.add_row(f"[{style}]{change.action}[/]", _escape(change.table),
                          str(change.count), sample_text(change.sample, change.count),
                          _escape(change.description))
        console.print(f"[bold]{plan.fix}[/]: {len(plan.targets)} row(s) to repair "
                      f"(targets {sample_text(plan.targets[:plan.sample_limit], len(plan.targets))}"
                      f"; fingerprint {plan.fingerprint[:12]})", highlight=False)
        console.print(f"parameters: {_escape(parameters_text(plan))}", highlight=False)
        console.print(table)
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {_escape(note)}", highlight=False)
    for blocker in plan.blockers:
        console.print(f"[red]blocked:[/] {_escape(blocker)}", highlight=False)


def parameters_text(plan: Plan) -> str:
    """``strategy=create-account, plan=free``: what the plan will do, in its own words."""
    shown = [f"{key}={value}" for key, value in plan.params.to_dict().items()
             if value not in (None, [], {}, ())]
    return ", ".join(shown) or "none"


def result_body(result: FixResult) -> dict[str, Any]:
    return {"fix": result.plan.fix, "params": result.plan.params.to_dict(),
            "fingerprint": result.plan.fingerprint, "targets": len(result.plan.targets),
            "run_id": result.run_id, "rows_changed": result.rows_changed,
            "batches": result.batches,
            "changed_by_someone_else": {"count": len(result.skipped),
                                        "ids": list(result.skipped)},
            "remaining": result.remaining, "checks": dict(result.checks)}


def result_json(result: FixResult) -> str:
    return dumps(result.KIND, result_body(result))


def render_result(result: FixResult, console: Console) -> None:
    if result.run_id is None:
        console.print(f"{result.plan.fix}: nothing to repair.", highlight=False)
    else:
        batches = f" in {result.batches} batches" if result.batches > 1 else ""
        console.print(f"[green]applied[/] {result.plan.fix}: {result.rows_changed} row(s) "
                      f"changed{batches}, journaled as run [bold]{result.run_id}[/] "
                      f"(undo: igny8ctl fix undo {result.run_id})", highlight=False)
    if result.skipped:
        console.print(f"[yellow]skipped:[/] {len(result.skipped)} planned row(s) changed by "
                      f"someone else, left as they are (ids "
                      f"{sample_text(result.skipped[:10], len(result.skipped))})",
                      highlight=False)
    for note in result.plan.notes:
        console.print(f"[yellow]note:[/] {_escape(note)}", highlight=False)
    style = "green" if result.remaining == 0 else "red"
    console.print(f"[{style}]re-check: {result.remaining} finding row(s) remain[/]"
                  + (f" ({', '.join(f'{c} {n}' for c, n in result.checks)})"
                     if result.checks else ""), highlight=False)


def history_json(history: FixHistory) -> str:
    return dumps(history.KIND, {"runs": [asdict(run) for run in history.runs]})


def render_history(history: FixHistory, console: Console) -> None:
    if not history.runs:
        console.print("No journaled runs.")
        return
    table = _table(console, "run", "job", "status", "rows", "started", "by", "undo")
    for run in history.runs:
        undo = (f"undone by {run.undone_by}" if run.undone_by
                else f"undoes {run.undoes}" if run.undoes else "")
        table.add_row(run.run_id, _escape(run.job), run.status, str(run.rows_changed),
                      run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                      _escape(f"{run.operator}@{run.host}"), undo)
    console.print(table)


def undo_plan_json(plan: UndoPlan) -> str:
    return dumps(plan.KIND, {
        "run": asdict(plan.run),
        "steps": [asdict(step) for step in plan.steps],
        "refusals": [{"reason": r.reason, "table": r.table, "ids": list(r.ids)}
                     for r in plan.refusals],
    })


def render_undo_plan(plan: UndoPlan, console: Console) -> None:
    run = plan.run
    console.print(f"[bold]undo {run.run_id}[/] ({_escape(run.job)}, {run.rows_changed} "
                  f"row(s), {_escape(run.command)})", highlight=False)
    table = _table(console, "step", "restores", "table", "rows")
    reverse = {"insert": "delete", "update": "update", "delete": "insert"}
    for step in plan.steps:
        table.add_row(str(step.step), reverse[step.action], _escape(step.table),
                      str(step.rows))
    console.print(table)
    for refusal in plan.refusals:
        console.print(f"[red]refused:[/] {_escape(refusal.table)} ids "
                      f"{sample_text(refusal.ids[:10], len(refusal.ids))}: "
                      f"{_escape(refusal.reason)}", highlight=False)


def undo_json(result: UndoResult) -> str:
    return dumps(result.KIND, {"undone": result.undone, "run_id": result.run_id,
                               "rows": result.rows})


def render_undo(result: UndoResult, console: Console) -> None:
    console.print(f"[green]undone[/] {result.undone}: {result.rows} row(s) restored, "
                  f"journaled as run [bold]{result.run_id}[/]", highlight=False)
