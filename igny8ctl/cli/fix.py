"""``igny8ctl fix``: preview by default, ``--apply`` to write, journaled and undoable."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from igny8ctl.cli.options import (
    Apply,
    ConfigPath,
    DatabaseUrl,
    Profile,
    Yes,
    confirm,
    load,
)
from igny8ctl.errors import ExitCode
from igny8ctl.render.console import stdout

app = typer.Typer(help="Repair defects: preview by default, --apply to write; journaled.",
                  no_args_is_help=True)


class Strategy(StrEnum):
    """The choices of igny8ctl.fixes.user_strategies.Strategy, kept here so that parsing
    options does not import SQLAlchemy."""

    CREATE_ACCOUNT = "create-account"
    ASSIGN = "assign"
    DELETE = "delete"


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


BatchSize = Annotated[int | None, typer.Option(
    "--batch-size", min=1, help="Commit every N repaired rows (resumable); default one "
    "transaction.")]
Wait = Annotated[float, typer.Option(
    "--wait", min=0, help="Wait up to SECONDS for another run's lock instead of exit 4.")]
Sample = Annotated[int, typer.Option("--sample", min=0, help="Ids to show per change.")]
Format = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")]
StrategyOption = Annotated[Strategy | None, typer.Option(
    "--strategy", "-s", help="create-account, assign (--account) or delete.",
    show_default=False)]
PlanSlug = Annotated[str, typer.Option("--plan", help="Plan of created accounts.")]
Role = Annotated[str | None, typer.Option(
    "--role", help="Role given to repaired users [create-account: owner; assign: unchanged].",
    show_default=False)]
AccountSlug = Annotated[str | None, typer.Option(
    "--account", help="assign: the account to attach users to.", show_default=False)]
EmailDomain = Annotated[str | None, typer.Option(
    "--email-domain", help="Only users with an email at this domain.", show_default=False)]
UserIds = Annotated[list[int] | None, typer.Option(
    "--user-id", help="Only these users (repeatable).", show_default=False)]
Cascade = Annotated[bool, typer.Option(
    "--cascade", help="Delete or clear referencing rows as Django's on_delete would.")]
SetColumns = Annotated[list[str] | None, typer.Option(
    "--set", help="create-account: COLUMN=VALUE for new accounts (repeatable).",
    show_default=False)]


def _run(name: str, params: dict[str, Any], database_url: str | None, config: Any,
         profile: str | None, apply: bool, yes: bool, batch_size: int | None, wait: float,
         sample: int, output_format: OutputFormat) -> None:
    from igny8ctl import api
    from igny8ctl.errors import Refused
    from igny8ctl.render.fix import plan_dict, render_plan, render_result, result_dict

    settings = load(database_url, config, profile)
    console = stdout()
    if apply and yes:
        # Unattended: apply_fix checks targets and blockers itself; skip the full preview.
        result = api.apply_fix(settings, name, params, batch_size, wait, sample)
    else:
        plan = api.plan_fix(settings, name, params, sample)
        if not apply or plan.blockers:
            if output_format is OutputFormat.JSON:
                typer.echo(json.dumps(plan_dict(plan), indent=2, default=str))
            else:
                render_plan(plan, console)
                if not plan.empty and not plan.blockers:
                    console.print("Preview only: nothing was written. Add --apply to repair.",
                                  highlight=False)
            if plan.blockers:
                raise Refused(plan.blockers[0])
            return
        if output_format is OutputFormat.TABLE:
            render_plan(plan, console)
        if not plan.empty:
            confirm(f"Apply {name} to {plan.targets} row(s)?", yes)
        result = api.apply_fix(settings, name, params, batch_size, wait, sample)
    if output_format is OutputFormat.JSON:
        typer.echo(json.dumps(result_dict(result), indent=2, default=str))
    else:
        render_result(result, console)
    if result.remaining:
        raise typer.Exit(ExitCode.FINDINGS)


def _user_params(strategy: Strategy | None, plan: str, role: str | None, account: str | None,
                 email_domain: str | None, user_ids: list[int] | None, cascade: bool,
                 set_columns: list[str] | None) -> dict[str, Any]:
    from igny8ctl.errors import ConfigError

    if strategy is None:
        raise ConfigError("choose --strategy create-account, assign or delete")
    extra = {}
    for item in set_columns or []:
        column, sep, value = item.partition("=")
        if not sep or not column:
            raise ConfigError(f"--set expects COLUMN=VALUE, got {item!r}")
        extra[column] = value
    if role is None and strategy is Strategy.CREATE_ACCOUNT:
        role = "owner"
    return {"strategy": strategy.value, "plan": plan, "role": role, "account": account,
            "email_domain": email_domain, "user_ids": user_ids or [], "cascade": cascade,
            "set": extra}


def _user_fix(name: str, summary: str) -> None:
    """Register a user repair: both kinds of broken user share strategies and options."""

    def command(
        strategy: StrategyOption = None, plan: PlanSlug = "free", role: Role = None,
        account: AccountSlug = None, email_domain: EmailDomain = None,
        user_id: UserIds = None, cascade: Cascade = False, set_columns: SetColumns = None,
        database_url: DatabaseUrl = None, config: ConfigPath = None, profile: Profile = None,
        apply: Apply = False, yes: Yes = False, batch_size: BatchSize = None, wait: Wait = 0,
        sample: Sample = 10, output_format: Format = OutputFormat.TABLE,
    ) -> None:
        params = _user_params(strategy, plan, role, account, email_domain, user_id, cascade,
                              set_columns)
        _run(name, params, database_url, config, profile, apply, yes, batch_size, wait,
             sample, output_format)

    command.__doc__ = summary
    app.command(name)(command)


def _simple_fix(name: str, summary: str) -> None:
    """Register a repair that takes no options of its own."""

    def command(
        database_url: DatabaseUrl = None, config: ConfigPath = None, profile: Profile = None,
        apply: Apply = False, yes: Yes = False, batch_size: BatchSize = None, wait: Wait = 0,
        sample: Sample = 10, output_format: Format = OutputFormat.TABLE,
    ) -> None:
        _run(name, {}, database_url, config, profile, apply, yes, batch_size, wait, sample,
             output_format)

    command.__doc__ = summary
    app.command(name)(command)


_user_fix("orphaned-users", "Users with no account: create one each, assign one, or delete them.")
_user_fix("dangling-accounts",
          "Users whose account_id names no account: the same strategies as orphans.")
_simple_fix("cross-tenant",
            "Detach keywords from other tenants' clusters; report site mismatches.")
_simple_fix("cluster-counts", "Recompute clusters' keywords_count and volume.")
_simple_fix("account-owners",
            "Give accounts with a missing or foreign owner their earliest owner-role member.")


@app.command("empty-accounts")
def empty_accounts(
    delete: Annotated[bool, typer.Option("--delete", help="Delete accounts with no users.")]
    = False,
    cascade: Cascade = False,
    database_url: DatabaseUrl = None, config: ConfigPath = None, profile: Profile = None,
    apply: Apply = False, yes: Yes = False, batch_size: BatchSize = None, wait: Wait = 0,
    sample: Sample = 10, output_format: Format = OutputFormat.TABLE,
) -> None:
    """Delete accounts with no users (never the system account)."""
    _run("empty-accounts", {"delete": delete, "cascade": cascade}, database_url, config,
         profile, apply, yes, batch_size, wait, sample, output_format)


@app.command("history")
def history(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most recent runs to list.")]
    = 50,
    job: Annotated[str | None, typer.Option("--fix", help="Only runs of this fix or job.",
                                            show_default=False)] = None,
    database_url: DatabaseUrl = None, config: ConfigPath = None, profile: Profile = None,
    output_format: Format = OutputFormat.TABLE,
) -> None:
    """List journaled runs, newest first."""
    from igny8ctl import api
    from igny8ctl.render.fix import render_history, runs_json

    runs = api.fix_history(load(database_url, config, profile), limit, job)
    if output_format is OutputFormat.JSON:
        typer.echo(runs_json(runs), nl=False)
    else:
        render_history(runs, stdout())


@app.command("undo")
def undo(
    run_id: Annotated[str, typer.Argument(help="The run to revert (see fix history).")],
    database_url: DatabaseUrl = None, config: ConfigPath = None, profile: Profile = None,
    apply: Apply = False, yes: Yes = False, wait: Wait = 0,
) -> None:
    """Restore exactly what a run changed; refuses if those rows changed since."""
    from igny8ctl import api
    from igny8ctl.errors import Refused
    from igny8ctl.render.fix import render_undo_plan

    settings = load(database_url, config, profile)
    console = stdout()
    plan = api.plan_undo(settings, run_id)
    render_undo_plan(plan, console)
    if plan.conflicts:
        raise Refused(f"run {run_id} cannot be undone: rows changed since it ran")
    if not apply:
        console.print("Preview only: nothing was written. Add --apply to undo.")
        return
    confirm(f"Undo run {run_id}?", yes)
    new_run, rows = api.apply_undo(settings, run_id, wait)
    console.print(f"[green]undone[/] {run_id}: {rows} row(s) restored, journaled as run "
                  f"[bold]{new_run}[/]", highlight=False)
