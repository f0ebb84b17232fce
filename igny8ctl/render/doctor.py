"""Doctor diagnoses for people (a table), machines (JSON) and support tickets (Markdown).

Usernames, emails, slugs, names and roles come from the database: every string of a
diagnosis goes through ``safe`` (Rich), ``printable`` (stderr) or ``inline_text``
(Markdown) before it is printed. Rich is imported only by the table renderer.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from igny8ctl.doctor.base import Diagnosis, Status, StepResult, TenantDiagnosis, UserDiagnosis
from igny8ctl.render import dumps
from igny8ctl.render.markdown import cell_text, inline_text

if TYPE_CHECKING:
    from rich.console import Console

STYLE = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "bold red",
         Status.INFO: "cyan"}


def subject_line(result: Diagnosis) -> str:
    if isinstance(result, UserDiagnosis):
        user, account = result.user, result.account
        where = (f"account {account.id} ({account.slug})" if account is not None
                 else "no account" if user.account_id is None
                 else f"account {user.account_id} (missing)")
        return (f"user {user.id} ({user.username}, {user.email}), matched by "
                f"{result.matched_by}; {where}")
    account = _tenant(result).account
    return f"account {account.id} ({account.slug}, {account.name})"


def _tenant(result: Diagnosis) -> TenantDiagnosis:
    assert isinstance(result, TenantDiagnosis), type(result)
    return result


def verdict(result: Diagnosis) -> str:
    """The verdict line: the first blocking step, or what may be worth a look."""
    blocking = result.blocking
    if blocking is not None:
        repair = f"; repair: {blocking.fix}" if blocking.fix else ""
        return (f"BLOCKED at step {blocking.number} ({blocking.title}): {blocking.message}"
                f"{repair}")
    who = (result.user.username if isinstance(result, UserDiagnosis)
           else f"tenant {_tenant(result).account.slug}")
    warned = result.warnings
    notes = (f" ({len(warned)} warning(s): "
             + ", ".join(f"step {s.number} {s.id}" for s in warned) + ")") if warned else ""
    return f"USABLE: {who} can use auto-cluster{notes}"


def _command(result: Diagnosis) -> str:
    return "doctor user" if isinstance(result, UserDiagnosis) else "doctor tenant"


def render_table(result: Diagnosis, console: Console) -> None:
    from igny8ctl.render.human import safe, table

    console.print(f"[bold]{_command(result)}[/] {safe(repr(result.query))}: "
                  f"{safe(subject_line(result))}", highlight=False)
    rows = table(console, "#", "step", "status", "finding", right=("#",),
                 no_wrap=("#", "status"))
    for step in result.steps:
        finding = safe(step.message) + "".join(f"\n[dim]· {safe(line)}[/]"
                                               for line in step.evidence)
        if step.fix:
            finding += f"\n[bold]repair:[/] {safe(step.fix)}"
        rows.add_row(str(step.number), safe(step.title),
                     f"[{STYLE[step.status]}]{step.status.value}[/]", finding)
    console.print(rows)
    style = "bold green" if result.usable else "bold red"
    console.print(f"[{style}]{safe(verdict(result))}[/]", highlight=False)


def render_json(result: Diagnosis) -> str:
    return dumps(result.KIND, {
        "database": result.database,
        "started_at": result.started_at.isoformat(timespec="seconds"),
        "duration_ms": round(result.duration_s * 1000, 1),
        "subject": _subject(result),
        "verdict": {"usable": result.usable,
                    "status": "usable" if result.usable else "blocked",
                    "step": result.blocking.id if result.blocking else None,
                    "message": verdict(result)},
        "steps": [_step(step) for step in result.steps],
    })


def _subject(result: Diagnosis) -> dict[str, Any]:
    if isinstance(result, UserDiagnosis):
        return {"type": "user", "query": result.query, "matched_by": result.matched_by,
                "user": asdict(result.user),
                "account": asdict(result.account) if result.account else None}
    return {"type": "tenant", "query": result.query, "account": asdict(_tenant(result).account)}


def _step(step: StepResult) -> dict[str, Any]:
    return {"number": step.number, "id": step.id, "title": step.title,
            "status": step.status.value, "message": step.message,
            "evidence": list(step.evidence), "fix": step.fix}


def render_markdown(result: Diagnosis) -> str:
    lines = [
        f"### igny8ctl {_command(result)} {inline_text(repr(result.query))}",
        "",
        inline_text(subject_line(result)),
        "",
        f"**{inline_text(verdict(result))}**",
        "",
        "| # | step | status | finding | evidence | repair |",
        "|---:|---|---|---|---|---|",
    ]
    for step in result.steps:
        status = f"**{step.status.value}**" if step.status is Status.FAIL else step.status.value
        cells = [str(step.number), inline_text(step.title), status, inline_text(step.message),
                 "<br>".join(inline_text(line) for line in step.evidence),
                 f"`{cell_text(step.fix)}`" if step.fix else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
