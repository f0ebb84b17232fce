"""``migrate`` results for a terminal or as JSON: status, runs, generated files, Django files.

Names come from the database and the configuration, so Rich output prints them through
``safe``; JSON keeps them as data (the encoder escapes them). The human renderers import
Rich on use, so asking for JSON never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from igny8ctl.render import dumps

if TYPE_CHECKING:
    from rich.console import Console

    from igny8ctl.catalog import Constraint, TenantKeyState
    from igny8ctl.migrations.django_state import DjangoStateResult
    from igny8ctl.migrations.runner import ApplyResult, Generated, MigrationStatus
    from igny8ctl.migrations.steps import Step


# -- status ------------------------------------------------------------------------------


def render_status(status: MigrationStatus, console: Console) -> None:
    from rich.table import Table

    from igny8ctl.render.human import safe

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("database", safe(status.database))
    for revision in status.revisions:
        mark = ("[yellow]applied, but drifted[/]" if revision.drifted else
                "[green]applied[/]" if revision.applied else "[yellow]pending[/]")
        grid.add_row(f"{revision.name}", f"{revision.revision} {mark}")
    column = f"{status.table}.{status.column}"
    grid.add_row("column", f"{safe(column)} " + (
        "[yellow]allows NULL[/]" if status.nullable else "[green]NOT NULL[/]"))
    key = status.account_column.valid_foreign_key or next(
        iter(status.account_column.foreign_keys), None)
    grid.add_row("foreign key", "[yellow]missing[/]" if key is None else safe(key.name) + (
        " [green]valid[/]" if key.validated else " [yellow]NOT VALID[/]"))
    if status.account_column.not_null_checks:
        grid.add_row("checks", ", ".join(
            safe(c.name) + (" (validated)" if c.validated else " (NOT VALID)")
            for c in status.account_column.not_null_checks))
    grid.add_row("orphaned users", _count(status.orphaned))
    grid.add_row("dangling users", _count(status.dangling))
    for state in status.tenant_keys:
        grid.add_row("tenant key", _key_line(state))
    for link in status.excluded:
        grid.add_row("tenant key", f"{safe(link.label)} [dim]excluded (tenant_keys_exclude)[/]")
    style = "red" if status.refusal else "bold" if status.next_action.startswith(
        ("run", "record")) else "green"
    grid.add_row("next", f"[{style}]{safe(status.next_action)}[/]")
    console.print(grid, highlight=False)
    if status.refusal:
        return
    steps = [step for revision in status.revisions for step in revision.steps]
    for number, step in enumerate(steps, 1):
        console.print(f"  {number}. {safe(step.title)}", highlight=False)
        for statement in step.statements:
            for line in statement.splitlines():
                console.print(f"     [dim]{safe(line)}[/]", highlight=False)


def _key_line(state: TenantKeyState) -> str:
    from igny8ctl.render.human import safe

    link = state.link
    what = (f"{safe(link.label)} -> {safe(link.parent)} "
            f"({', '.join(safe(c) for c in link.parent_columns)})")
    if state.enforced:
        assert state.foreign_key is not None
        return f"{what} [green]valid[/] [dim]{safe(state.foreign_key.name)}[/]"
    if state.foreign_key is not None:
        return f"{what} [yellow]NOT VALID[/] [dim]{safe(state.foreign_key.name)}[/]"
    if state.unique_key is None and state.unique_keys:
        return f"{what} [yellow]missing; the parent's unique index is INVALID[/]"
    return f"{what} [yellow]missing[/]"


def status_dict(status: MigrationStatus) -> dict[str, Any]:
    state = status.account_column
    key = state.valid_foreign_key or next(iter(state.foreign_keys), None)
    return {
        "database": status.database,
        "dialect": status.dialect,
        "table": status.table,
        "column": status.column,
        "current": list(status.current),
        "head": status.head,
        "pending": list(status.pending),
        "nullable": status.nullable,
        "foreign_key": _constraint(key, "validated"),
        "not_null_checks": [_constraint(c, "validated") for c in state.not_null_checks],
        "orphaned_users": status.orphaned,
        "dangling_users": status.dangling,
        "enforced": status.enforced,
        "revisions": [{
            "name": r.name, "revision": r.revision, "applied": r.applied,
            "drifted": r.drifted, "refusal": r.refusal,
            "steps": [_step(s) for s in r.steps],
        } for r in status.revisions],
        "tenant_keys": [{
            "link": s.link.label, "child": s.link.child, "columns": list(s.link.columns),
            "parent": s.link.parent, "parent_columns": list(s.link.parent_columns),
            "unique_key": _constraint(s.unique_key or next(iter(s.unique_keys), None), "valid"),
            "foreign_key": _constraint(s.foreign_key, "validated"),
            "enforced": s.enforced,
        } for s in status.tenant_keys],
        "excluded_links": [link.label for link in status.excluded],
        "next": {
            "action": status.next_action,
            "refused": status.refusal is not None,
            "steps": [{"revision": r.name, **_step(s)} for r in status.revisions
                      for s in r.steps],
        },
    }


def status_json(status: MigrationStatus) -> str:
    return dumps(status.KIND, status_dict(status))


def _constraint(constraint: Constraint | None, flag: str) -> dict[str, Any] | None:
    return None if constraint is None else {"name": constraint.name,
                                            flag: constraint.validated}


def _step(step: Step) -> dict[str, Any]:
    return {"key": step.key, "title": step.title, "sql": list(step.statements),
            "transaction": step.transactional,
            "locks": [{"table": t, "mode": m} for t, m in step.locks]}


# -- apply and downgrade -----------------------------------------------------------------


def render_run(result: ApplyResult, console: Console) -> None:
    from igny8ctl.render.human import safe

    for number, run in enumerate(result.steps, 1):
        attempts = f" after {run.attempts} attempts" if run.attempts > 1 else ""
        console.print(f"  {number}. {run.revision}: {safe(run.title)}  "
                      f"[dim]{run.duration_s * 1000:.0f} ms{attempts}[/]", highlight=False)
    console.print(_verdict(result), highlight=False)


def _verdict(result: ApplyResult) -> str:
    seconds = f"{result.duration_s:.1f} s"
    if result.stopped is not None:
        return (f"[yellow]stopped after {len(result.steps)} step(s) as asked, "
                f"{result.stopped.remaining} left in {result.stopped.revision}: run igny8ctl "
                "migrate apply again to finish[/]")
    after = ", ".join(result.after) or "(none)"
    if result.direction == "downgrade":
        if not result.changed:
            return "nothing to downgrade: no revision above the target is applied"
        return (f"[yellow]downgraded to {result.target} in {seconds} (revision {after}): "
                "what the removed revisions enforced is no longer enforced[/]")
    if not result.changed:
        return f"[green]nothing to do: revision {after} is applied and enforced[/]"
    if not result.steps:
        return f"[green]recorded revision {after}: the database already enforced it[/]"
    return (f"[green]applied up to {result.target} in {seconds} (revision {after}): every "
            "user has an account" + (", and no row links to another tenant's row"
                                     if result.target == "tenant-keys" else "") + "[/]")


def run_dict(result: ApplyResult) -> dict[str, Any]:
    return {"database": result.database, "direction": result.direction,
            "target": result.target, "before": list(result.before),
            "after": list(result.after), "complete": result.complete,
            "stopped": None if result.stopped is None else {
                "revision": result.stopped.revision, "remaining": result.stopped.remaining},
            "duration_s": round(result.duration_s, 3),
            "steps": [{"revision": r.revision, "key": r.key, "title": r.title,
                       "attempts": r.attempts, "duration_ms": round(r.duration_s * 1000, 1)}
                      for r in result.steps]}


def run_json(result: ApplyResult) -> str:
    return dumps(result.KIND, run_dict(result))


# -- generate ----------------------------------------------------------------------------


def render_generated(result: Generated, console: Console) -> None:
    from igny8ctl.render.human import safe

    for path in result.paths:
        console.print(f"wrote {safe(str(path))}", highlight=False)


def generated_json(result: Generated) -> str:
    return dumps(result.KIND, {"paths": [str(p) for p in result.paths]})


# -- django-state ------------------------------------------------------------------------


def render_django_state(result: DjangoStateResult, console: Console) -> None:
    from igny8ctl.render.human import safe, table

    rows = table(console, "file", "line", "operation", "verdict")
    for file in result.files:
        for rewrite in file.rewritten:
            rows.add_row(safe(str(file.path)), str(rewrite.line), safe(rewrite.operation),
                         "[green]rewritten: state only (SeparateDatabaseAndState)[/]")
        for hazard in file.hazards:
            rows.add_row(safe(str(file.path)), str(hazard.line), safe(hazard.operation),
                         f"[red]{safe(hazard.reason)}[/]")
    if rows.row_count:
        console.print(rows)
    console.print(safe(result.verdict), highlight=False)


def django_state_dict(result: DjangoStateResult) -> dict[str, Any]:
    return {"check": result.check, "verdict": result.verdict, "files": [{
        "path": str(f.path),
        "rewritten": [{"line": r.line, "operation": r.operation} for r in f.rewritten],
        "already_state_only": [{"line": r.line, "operation": r.operation}
                               for r in f.already],
        "hazards": [{"line": h.line, "operation": h.operation, "reason": h.reason}
                    for h in f.hazards],
    } for f in result.files]}


def django_state_json(result: DjangoStateResult) -> str:
    return dumps(result.KIND, django_state_dict(result))


def _count(value: int) -> str:
    return f"[red]{value}[/]" if value else "0"
