"""``igny8ctl fix``: preview by default, ``--apply`` to write, journaled and undoable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from igny8ctl.cli.options import (
    Apply,
    ConfigPath,
    DatabaseUrl,
    FormatOption,
    Profile,
    Yes,
    confirm,
    load,
    output_format_of,
)
from igny8ctl.errors import ExitCode
from igny8ctl.fixes.params import Role, Strategy
from igny8ctl.render import OutputFormat

app = typer.Typer(help="Repair defects: preview by default, --apply to write; journaled.",
                  no_args_is_help=True)

#: What each command of this group can print; a test holds the renderer registry to it.
FORMATS = {
    kind: (OutputFormat.TABLE, OutputFormat.JSON)
    for kind in ("fix.plan", "fix.result", "fix.history", "fix.undo-plan", "fix.undo")
}

BatchSize = Annotated[int | None, typer.Option(
    "--batch-size", min=1, max=10_000_000, help="Commit every N planned rows (resumable); "
    "default one transaction.")]
Wait = Annotated[float, typer.Option(
    "--wait", min=0, max=86_400, help="Wait up to SECONDS for another run's lock instead of "
    "exit 4.")]
Sample = Annotated[int, typer.Option("--sample", min=0, max=100_000,
                                     help="Ids to show per change.")]
SavePlan = Annotated[Path | None, typer.Option(
    "--save-plan", help="Write the plan (JSON) to FILE, to apply later with fix apply FILE.",
    show_default=False, dir_okay=False)]
StrategyOption = Annotated[Strategy | None, typer.Option(
    "--strategy", "-s", help="create-account, assign (--account) or delete.",
    show_default=False)]
PlanSlug = Annotated[str, typer.Option("--plan", help="Plan of created accounts.")]
RoleOption = Annotated[Role | None, typer.Option(
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


def _run(name: str, params: Any, database_url: str | None, config: Any,
         profile: str | None, apply: bool, yes: bool, batch_size: int | None, wait: float,
         sample: int, output_format: OutputFormat, save_plan: Path | None) -> None:
    from igny8ctl import api
    from igny8ctl.errors import Refused
    from igny8ctl.render import emit

    output_format = output_format_of(output_format)
    settings = load(database_url, config, profile)
    plan = api.plan_fix(settings, name, params, sample)
    if save_plan is not None:
        from igny8ctl.outputs import write_output

        write_output(save_plan, api.fix_plan_text(plan), "--save-plan")
    if not apply or plan.blockers:
        if output_format is OutputFormat.TABLE or not plan.blockers:
            emit(plan, output_format)
        if plan.blockers:
            raise Refused(plan.blockers[0])
        if output_format is OutputFormat.TABLE and not plan.empty:
            typer.echo("Preview only: nothing was written. Add --apply to repair"
                       + (f", or run igny8ctl fix apply {save_plan}." if save_plan else "."))
        return
    if output_format is OutputFormat.TABLE:
        emit(plan, output_format)
    if not plan.empty:
        confirm(f"Apply {name} to {len(plan.targets)} row(s)?", yes)
    _applied(api.apply_plan(settings, plan, batch_size, wait), output_format)


def _applied(result: Any, output_format: OutputFormat) -> None:
    from igny8ctl.render import emit

    emit(result, output_format)
    if result.remaining:
        raise typer.Exit(ExitCode.FINDINGS)


def _user_params(strategy: Strategy | None, plan: str, role: Role | None, account: str | None,
                 email_domain: str | None, user_ids: list[int] | None, cascade: bool,
                 set_columns: list[str] | None) -> dict[str, Any]:
    from igny8ctl.errors import ConfigError

    extra = {}
    for item in set_columns or []:
        column, sep, value = item.partition("=")
        if not sep or not column:
            raise ConfigError(f"--set expects COLUMN=VALUE, got {item[:60]!r}", key="--set")
        extra[column] = value
    raw: dict[str, Any] = {"plan": plan, "cascade": cascade, "set": extra,
                           "user_ids": user_ids or []}
    if strategy is not None:
        raw["strategy"] = strategy.value
    if role is not None:
        raw["role"] = role.value
    for key, text in (("account", account), ("email_domain", email_domain)):
        if text is not None:
            raw[key] = text
    return raw


def _user_fix(name: str, summary: str) -> None:
    """Register a user repair: both kinds of broken user share strategies and options."""

    def command(
        strategy: StrategyOption = None, plan: PlanSlug = "free", role: RoleOption = None,
        account: AccountSlug = None, email_domain: EmailDomain = None,
        user_id: UserIds = None, cascade: Cascade = False, set_columns: SetColumns = None,
        database_url: DatabaseUrl = None, config: ConfigPath = None, profile: Profile = None,
        apply: Apply = False, yes: Yes = False, batch_size: BatchSize = None, wait: Wait = 0,
        sample: Sample = 10, output_format: FormatOption = OutputFormat.TABLE,
        save_plan: SavePlan = None,
    ) -> None:
        from igny8ctl.fixes.params import parse_params

        params = parse_params(name, _user_params(strategy, plan, role, account, email_domain,
                                                 user_id, cascade, set_columns))
        _run(name, params, database_url, config, profile, apply, yes, batch_size, wait, sample,
             output_format, save_plan)

    command.__doc__ = summary
    app.command(name)(command)


def _simple_fix(name: str, summary: str) -> None:
    """Register a repair that takes no options of its own."""

    def command(
        database_url: DatabaseUrl = None, config: ConfigPath = None, profile: Profile = None,
        apply: Apply = False, yes: Yes = False, batch_size: BatchSize = None, wait: Wait = 0,
        sample: Sample = 10, output_format: FormatOption = OutputFormat.TABLE,
        save_plan: SavePlan = None,
    ) -> None:
        _run(name, {}, database_url, config, profile, apply, yes, batch_size, wait, sample,
             output_format, save_plan)

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
    sample: Sample = 10, output_format: FormatOption = OutputFormat.TABLE,
    save_plan: SavePlan = None,
) -> None:
    """Delete accounts with no users (never the system account)."""
    _run("empty-accounts", {"delete": delete, "cascade": cascade}, database_url, config,
         profile, apply, yes, batch_size, wait, sample, output_format, save_plan)


@app.command("apply")
def apply_saved(
    plan_file: Annotated[Path, typer.Argument(
        metavar="FILE", help="A plan written by --save-plan.", dir_okay=False)],
    database_url: DatabaseUrl = None, config: ConfigPath = None, profile: Profile = None,
    yes: Yes = False, batch_size: BatchSize = None, wait: Wait = 0,
    output_format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Apply a saved plan exactly; refuses (exit 1) if any of its targets changed since."""
    from igny8ctl import api
    from igny8ctl.render import emit

    output_format = output_format_of(output_format)
    settings = load(database_url, config, profile)
    plan = api.replan_saved(settings, api.load_fix_plan(plan_file))
    if output_format is OutputFormat.TABLE:
        emit(plan, output_format)
    if not plan.empty:
        confirm(f"Apply the {plan.fix} plan to {len(plan.targets)} row(s)?", yes)
    _applied(api.apply_plan(settings, plan, batch_size, wait, saved=True), output_format)


@app.command("history")
def history(
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000,
                                       help="Most recent runs to list.")] = 50,
    job: Annotated[str | None, typer.Option("--fix", help="Only runs of this fix or job.",
                                            show_default=False)] = None,
    database_url: DatabaseUrl = None, config: ConfigPath = None, profile: Profile = None,
    output_format: FormatOption = OutputFormat.TABLE,
) -> None:
    """List journaled runs, newest first."""
    from igny8ctl import api
    from igny8ctl.render import emit

    output_format = output_format_of(output_format)
    emit(api.fix_history(load(database_url, config, profile), limit, job), output_format)


@app.command("undo")
def undo(
    run_id: Annotated[str, typer.Argument(help="The run to revert (see fix history).")],
    database_url: DatabaseUrl = None, config: ConfigPath = None, profile: Profile = None,
    apply: Apply = False, yes: Yes = False, wait: Wait = 0,
    output_format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Restore exactly what a run changed; refuses, writing nothing, if that is not possible."""
    from igny8ctl import api
    from igny8ctl.journal.undo import refusal_error
    from igny8ctl.render import emit

    output_format = output_format_of(output_format)
    settings = load(database_url, config, profile)
    # One JSON document per command: applying, it is the result or the error object (which
    # names every id), so the checks run once, under the undo's locks.
    if not apply or output_format is OutputFormat.TABLE:
        plan = api.plan_undo(settings, run_id)
        if output_format is OutputFormat.TABLE or not plan.refusals:
            emit(plan, output_format)
        if plan.refusals:
            raise refusal_error(run_id, plan.refusals)
        if not apply:
            if output_format is OutputFormat.TABLE:
                typer.echo("Preview only: nothing was written. Add --apply to undo.")
            return
    confirm(f"Undo run {run_id}?", yes)
    emit(api.apply_undo(settings, run_id, wait), output_format)
