"""The verbs of igny8ctl as plain functions: the CLI is a thin adapter over these.

Checks: ``catalogue``, ``run_checks``. Fixes: ``plan_fix``, ``apply_fix``, ``fix_history``,
``plan_undo``, ``apply_undo``. Operations: ``repair``, ``record_checks``,
``check_history``. Clustering: ``propose_clusters``, ``apply_clusters``,
``load_cluster_plan``, ``cluster_plan_text``. Migrations: ``migration_status``,
``apply_migration``, ``migration_sql``, ``migration_downgrade_plan``, ``downgrade_migration``,
``generate_migration``, ``django_state``. Support: ``doctor_user``, ``doctor_tenant``.
Clustering, migrations and the doctor import their modules on use, so ``check`` never
loads the cluster job, openai or Alembic.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from igny8ctl.checks import REGISTRY, Check, Severity
from igny8ctl.checks.base import CheckContext, CheckResult, run_check
from igny8ctl.config import Settings
from igny8ctl.db import (
    Igny8Schema,
    connect,
    create_engine,
    database_errors,
    display_url,
    job_lock,
    read_only,
    reflect,
)
from igny8ctl.dialects import dialect_of
from igny8ctl.errors import ConfigError, Refused
from igny8ctl.render.text import printable
from igny8ctl.report import (
    Catalogue,
    CheckReport,
    apply_baseline,
    load_baseline,
    trim_samples,
)

if TYPE_CHECKING:
    from igny8ctl.cluster.base import Progress
    from igny8ctl.cluster.types import ClusterApplied, ClusterProposal, ClusterRequest
    from igny8ctl.doctor.base import TenantDiagnosis, UserDiagnosis
    from igny8ctl.fixes.base import Fix, FixResult, Plan
    from igny8ctl.fixes.params import FixParams
    from igny8ctl.history import CheckHistory
    from igny8ctl.journal.runs import RunSummary
    from igny8ctl.journal.undo import FixHistory, UndoPlan, UndoResult
    from igny8ctl.migrations.django_state import DjangoStateResult
    from igny8ctl.migrations.runner import ApplyResult, Generated, MigrationStatus
    from igny8ctl.tenants import Tenant


BASELINE_IDS_LIMIT = 10_000


def catalogue() -> Catalogue:
    return Catalogue(tuple(check.info() for check in REGISTRY))


def select_checks(include: list[str] | None = None,
                  exclude: list[str] | None = None) -> list[type[Check]]:
    """Checks by id or glob (``users.*``); an unknown id is an error, not an empty run."""
    ids = [check.id for check in REGISTRY]

    def matching(pattern: str) -> set[str]:
        found = set(fnmatch.filter(ids, pattern))
        if not found:
            raise ConfigError(f"unknown check {printable(pattern)[:100]!r} (see igny8ctl check "
                              "--list)", key="--check")
        return found

    chosen = set().union(*(matching(p) for p in include)) if include else set(ids)
    for pattern in exclude or []:
        chosen -= matching(pattern)
    if not chosen:
        raise ConfigError("--check and --exclude leave no check to run", key="--exclude")
    return [check for check in REGISTRY if check.id in chosen]


def run_checks(
    settings: Settings,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    sample_limit: int = 20,
    fail_on: Severity | None = Severity.ERROR,
    baseline: Path | None = None,
    tenants: Sequence[str] | None = None,
) -> CheckReport:
    """Run the selected checks in one read-only snapshot and return the report.

    ``tenants`` (account slugs or ids) restricts every tenant-scoped check to those
    accounts' rows; checks whose rows have no tenant are skipped unless ``include`` names
    them, and then they cover the whole database.
    """
    checks = select_checks(include, exclude)
    skipped = tuple(c.info() for c in checks if not c.tenant_scoped) \
        if tenants and include is None else ()
    if skipped:
        checks = [c for c in checks if c.tenant_scoped]
        if not checks:
            raise ConfigError("--tenant: no tenant-scoped check is selected (name global "
                              "checks with --check to run them)", key="--tenant")
    accepted = load_baseline(baseline) if baseline else None
    shown = sample_limit
    if accepted:
        # Comparing against a baseline that listed every id needs every current id too.
        sample_limit = max(sample_limit, min(BASELINE_IDS_LIMIT, max(
            (entry.count + 1 for entry in accepted.values() if entry.complete), default=0)))
    engine = create_engine(settings)
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    with read_only(engine, settings) as connection:
        schema = reflect(connection, settings)
        scope = _find_tenants(connection, schema, tenants) if tenants else ()
        context = CheckContext(connection, schema, settings, sample_limit,
                               tuple(t.id for t in scope) if tenants else None)
        outcome_results = tuple(_run_check(engine, settings, check, context)
                                for check in checks)
    if accepted is not None:
        outcome_results = trim_samples(apply_baseline(outcome_results, accepted), shown)
    return CheckReport(
        database=display_url(engine.url),
        started_at=started_at,
        duration_s=time.perf_counter() - started,
        results=outcome_results,
        fail_on=fail_on,
        baseline=str(baseline) if baseline else None,
        tenants=scope,
        skipped=skipped,
    )


def _run_check(engine: Engine, settings: Settings, check: type[Check],
               context: CheckContext) -> CheckResult:
    """One check; a database error (a statement timeout) names it."""
    with database_errors(engine, during=f"check {check.info().id}",
                         statement_timeout_ms=settings.statement_timeout_ms):
        return run_check(check, context)


def _find_tenants(connection: Connection, schema: Igny8Schema,
                  tenants: Sequence[str]) -> tuple[Tenant, ...]:
    """Accounts by slug or id, each once, in the order given; an unknown one is a usage
    error naming it."""
    from igny8ctl.tenants import find_tenant

    return tuple(dict.fromkeys(find_tenant(connection, schema, t) for t in tenants))


def demo(path: Path, force: bool = False) -> tuple[Settings, CheckReport]:
    """Build the sandbox and check it; the defects are the point, so this never fails on them."""
    from igny8ctl.demo import create_demo_database

    create_demo_database(path, force=force)
    settings = Settings(database_url=f"sqlite:///{path}", url_source="demo")
    return settings, run_checks(settings)


# -- fixes -------------------------------------------------------------------------------


def _make_fix(name: str, connection: Connection, settings: Settings,
              params: Mapping[str, Any] | FixParams, schema: Igny8Schema | None = None) -> Fix:
    """``name`` with its typed parameters, on ``schema`` (reflected here if not given)."""
    from igny8ctl.fixes.base import utcnow
    from igny8ctl.fixes.params import parse_params
    from igny8ctl.fixes.registry import REGISTRY

    typed = parse_params(name, params)
    return REGISTRY[name](schema or reflect(connection, settings), settings, utcnow(), typed)


def plan_fix(settings: Settings, name: str, params: Mapping[str, Any] | FixParams,
             sample_limit: int = 10) -> Plan:
    """What ``name`` would change, bound to its exact targets, computed read-only."""
    from igny8ctl.fixes import runner

    engine = create_engine(settings)
    with read_only(engine, settings) as connection, database_errors(
            engine, during=f"fix {name}: planning",
            statement_timeout_ms=settings.statement_timeout_ms):
        return runner.plan(connection, _make_fix(name, connection, settings, params),
                           sample_limit)


def apply_fix(settings: Settings, name: str, params: Mapping[str, Any] | FixParams,
              batch_size: int | None = None, wait_seconds: float = 0,
              sample_limit: int = 10) -> FixResult:
    """Plan ``name`` and apply that plan (``apply_plan``)."""
    return apply_plan(settings, plan_fix(settings, name, params, sample_limit), batch_size,
                      wait_seconds)


def apply_plan(settings: Settings, plan: Plan, batch_size: int | None = None,
               wait_seconds: float = 0, saved: bool = False) -> FixResult:
    """Execute ``plan`` under the fix's lock, journaled, in one transaction or in batches.

    Each batch locks its planned rows and writes only those that still qualify; the others
    are reported as skipped. A ``saved`` plan (a file) is checked first: every id must be a
    target of the fix as planned (else exit 2), and a target changed since refuses it
    (exit 1). A run killed at any point leaves whole batches; planning again finishes the
    work without redoing any of it.
    """
    from igny8ctl.fixes import runner
    from igny8ctl.fixes.base import FixResult

    if plan.blockers:
        raise Refused(plan.blockers[0])
    engine = create_engine(settings)
    with job_lock(engine, f"fix:{plan.fix}", wait_seconds), connect(engine) as connection:
        with connection.begin():
            dialect_of(connection).set_timeouts(connection, settings.statement_timeout_ms)
            fix = _make_fix(plan.fix, connection, settings, plan.params)
            if saved:
                _check_saved(connection, fix, plan)
            before = _recheck(connection, settings, fix) if plan.targets else {}
        run_id, rows_changed, batches, skipped = runner.execute(
            engine, connection, settings, fix, plan, batch_size, saved)
        with connection.begin():
            dialect_of(connection).set_timeouts(connection, settings.statement_timeout_ms)
            after = _recheck(connection, settings, fix) if plan.targets else {}
    remaining = sum(count for check, count in after.items()
                    if check == fix.check or count > before.get(check, 0))
    return FixResult(plan, run_id, rows_changed, batches, remaining, skipped,
                     tuple(sorted(after.items())))


def _check_saved(connection: Connection, fix: Fix, plan: Plan) -> None:
    """A plan file's ids against the database, before anything is written."""
    from igny8ctl.fixes import runner
    from igny8ctl.journal.tables import primary_key
    from igny8ctl.render.text import listing

    if plan.table != fix.root.name:
        raise ConfigError(f"plan: {plan.fix} repairs {fix.root.name}, not {plan.table[:80]}",
                          key="PLAN")
    if not plan.targets:
        return
    stale = set(runner.changed_targets(connection, fix, plan, plan.targets))
    rows = connection.execute(sa.select(
        primary_key(fix.root), sa.case((fix.still_planned(plan), True), else_=False)
    ).where(runner.planned_ids(fix, plan.targets), fix.target_condition())).all()
    qualifying = {int(row[0]) for row in rows}
    still = {int(row[0]) for row in rows if row[1]}
    # A target that still qualifies but whose planned account's slug was taken since
    # changed since the plan; any other mismatch is an edited plan.
    unfit = qualifying - still
    slugs = {a.owner_id: a.slug for a in plan.accounts if a.owner_id in unfit}
    if slugs:
        account = fix.schema.account
        taken = set(connection.scalars(sa.select(account.slug).where(
            account.slug.in_(sorted(set(slugs.values()))))))
        stale |= {user for user, slug in slugs.items() if slug in taken}
    foreign = sorted(set(plan.targets) - still - stale)
    if foreign:
        raise ConfigError(f"plan: {len(foreign)} id(s) are not targets of {plan.fix} as "
                          f"planned (ids {listing(foreign)}); nothing was written", key="PLAN")
    if stale:
        raise runner.stale_refusal(fix, sorted(stale))


def _recheck(connection: Connection, settings: Settings, fix: Fix) -> dict[str, int]:
    """Counts of the fix's own findings and of every check its tables feed, on the fix's
    own connection and schema (no second engine, no second reflection)."""
    counts: dict[str, int] = {}
    context = CheckContext(connection, fix.schema, settings, sample_limit=0)
    for check in select_checks(sorted({fix.check, *fix.rechecks})):
        result = run_check(check, context)
        for finding in result.findings:
            if result.info.id == fix.check:
                if fix.finding_codes is not None and finding.code not in fix.finding_codes:
                    continue
            elif finding.severity is Severity.INFO:
                continue
            counts[result.info.id] = counts.get(result.info.id, 0) + finding.count
    return counts


def load_fix_plan(path: Path) -> Plan:
    from igny8ctl.fixes.plan_file import load

    return load(path)


def replan_saved(settings: Settings, saved: Plan) -> Plan:
    """The plan a saved one stands for, computed again from its parameters and targets.

    A plan file is untrusted: its ids are checked (not targets: exit 2; changed since:
    exit 1), the accounts it would create or join must be the ones the fix would make now
    (exit 1 otherwise), and what is shown and executed is the recomputed plan, never the
    file's own description of its changes.
    """
    from igny8ctl.fixes import runner
    from igny8ctl.render.text import listing

    engine = create_engine(settings)
    with read_only(engine, settings) as connection, database_errors(
            engine, during=f"fix {saved.fix}: checking the saved plan",
            statement_timeout_ms=settings.statement_timeout_ms):
        fix = _make_fix(saved.fix, connection, settings, saved.params)
        _check_saved(connection, fix, saved)
        fresh = runner.plan(connection, fix, saved.sample_limit, only=saved.targets)
    differing = sorted({a.owner_id for a in set(fresh.accounts) ^ set(saved.accounts)}
                       | {user for user, _ in set(fresh.joins) ^ set(saved.joins)})
    if differing:
        raise Refused(
            f"plan refused: the accounts it would create or join for {len(differing)} user(s) "
            f"are not the ones {saved.fix} would make now (ids {listing(differing)}); "
            "nothing was written, make a new plan",
            rows={fix.root.name: differing})
    return fresh


def fix_plan_text(plan: Plan) -> str:
    from igny8ctl.fixes.runner import plan_body
    from igny8ctl.plans import plan_text

    return plan_text(plan.KIND, plan_body(plan))


def fix_history(settings: Settings, limit: int = 50, job: str | None = None) -> FixHistory:
    from igny8ctl.journal.runs import list_runs
    from igny8ctl.journal.undo import FixHistory

    engine = create_engine(settings)
    with read_only(engine, settings) as connection:
        return FixHistory(list_runs(connection, limit, job))


def _undoable(connection: Connection, run_id: str) -> RunSummary:
    from igny8ctl.journal.runs import get_run

    run = get_run(connection, run_id)
    if run.undone_by:
        raise Refused(f"run {run_id} was already undone by run {run.undone_by}")
    return run


def plan_undo(settings: Settings, run_id: str) -> UndoPlan:
    """What undoing ``run_id`` restores, and every reason it would refuse (read-only)."""
    from igny8ctl.journal.undo import UndoPlan, refusals, run_steps

    engine = create_engine(settings)
    with read_only(engine, settings) as connection, \
            database_errors(engine, during=f"undo {run_id} preview",
                            statement_timeout_ms=settings.statement_timeout_ms):
        run = _undoable(connection, run_id)
        schema = reflect(connection, settings)
        return UndoPlan(run, run_steps(connection, run_id),
                        refusals(connection, schema, run_id))


def apply_undo(settings: Settings, run_id: str, wait_seconds: float = 0) -> UndoResult:
    """Restore what ``run_id`` changed, in one journaled transaction, or refuse (exit 1)
    writing nothing."""
    from igny8ctl.fixes.registry import REGISTRY as FIXES
    from igny8ctl.journal.runs import RunInfo
    from igny8ctl.journal.undo import UndoResult, undo
    from igny8ctl.journal.writer import Journal

    engine = create_engine(settings)
    with read_only(engine, settings) as connection:
        job = _undoable(connection, run_id).job
    with ExitStack() as locks:
        locks.enter_context(job_lock(engine, "undo", wait_seconds))
        if job in FIXES:  # a batched fix may still be committing batches of this run
            locks.enter_context(job_lock(engine, f"fix:{job}", wait_seconds))
        connection = locks.enter_context(connect(engine))
        dialect = dialect_of(connection)
        dialect.prepare_write(connection)
        with connection.begin(), database_errors(
                engine, during=f"undo {run_id}",
                statement_timeout_ms=settings.statement_timeout_ms):
            original = _undoable(connection, run_id)
            schema = reflect(connection, settings)
            dialect.set_timeouts(connection, settings.statement_timeout_ms)
            journal = Journal(connection, RunInfo.new(
                "undo", {"run": run_id, "of": original.job}, undoes=run_id))
            rows = undo(journal, schema, run_id, settings.statement_timeout_ms)
            journal.record_run("applied")
            journal.analyze()
            return UndoResult(run_id, journal.run.run_id, rows)


# -- history and scheduled repair --------------------------------------------------------


def record_checks(settings: Settings, report: CheckReport) -> str:
    """Store a report's counts in ``igny8ctl_check_runs`` for ``check history``."""
    from igny8ctl.history import record

    engine = create_engine(settings)
    with connect(engine) as connection, connection.begin():
        return record(connection, report)


def check_history(settings: Settings, check: str | None = None,
                  runs: int = 30) -> CheckHistory:
    from igny8ctl.history import CheckHistory, trends

    chosen = {c.id for c in select_checks([check])} if check else None
    engine = create_engine(settings)
    with read_only(engine, settings) as connection:
        return CheckHistory(tuple(trends(connection, chosen, runs)))


#: Without a configured ``[repair]`` policy: nothing destructive, nothing that needs a human.
DEFAULT_REPAIR_POLICY = {
    "orphaned-users": "create-account",
    "dangling-accounts": "create-account",
    "cluster-counts": "on",
}
#: Fixes in the order a repair applies them: users first, recounts after detaching.
REPAIR_ORDER = ("orphaned-users", "dangling-accounts", "account-owners", "cross-tenant",
                "cluster-counts", "empty-accounts")


@dataclass(frozen=True)
class Repair:
    fix: str
    action: str
    result: FixResult


@dataclass(frozen=True)
class RepairResult:
    before: CheckReport
    repairs: tuple[Repair, ...]
    after: CheckReport

    @property
    def passed(self) -> bool:
        return self.after.passed


def repair_params(fix: str, action: str) -> FixParams | None:
    """Parameters for ``fix`` under a policy action, or None when the policy says off."""
    from igny8ctl.fixes.params import policy_params

    return policy_params(fix, action)


def repair(
    settings: Settings,
    fail_on: Severity | None = Severity.ERROR,
    batch_size: int | None = 10_000,
    on_repair: Callable[[Repair], None] | None = None,
) -> RepairResult:
    """Check, apply what the policy allows, check again; one repair at a time per database."""
    from igny8ctl.fixes.registry import REGISTRY

    policy = dict(settings.repair_policy) or DEFAULT_REPAIR_POLICY
    for fix in sorted(policy):
        repair_params(fix, policy[fix])
    planned = [(fix, policy[fix], params) for fix in REPAIR_ORDER if fix in policy
               if (params := repair_params(fix, policy[fix])) is not None]
    engine = create_engine(settings)
    with job_lock(engine, "repair"):
        with read_only(engine, settings) as connection, database_errors(
                engine, during="repair: resolving the policy",
                statement_timeout_ms=settings.statement_timeout_ms):
            schema = reflect(connection, settings)
            for fix, _, params in planned:
                _make_fix(fix, connection, settings, params, schema).resolve(connection)
        before = run_checks(settings, sample_limit=5, fail_on=fail_on)
        found = {f.check: f.count for r in before.results for f in r.findings
                 if f.count and f.severity is not Severity.INFO}
        repairs = []
        for fix, action, params in planned:
            if not found.get(REGISTRY[fix].check):
                continue
            outcome = Repair(fix, action, apply_fix(settings, fix, params, batch_size))
            if outcome.result.run_id is not None:
                repairs.append(outcome)
                if on_repair:
                    on_repair(outcome)
        after = run_checks(settings, sample_limit=5, fail_on=fail_on) if repairs else before
    return RepairResult(before, tuple(repairs), after)


# -- clustering (imported on use: ``check`` and ``fix`` never load the cluster job) --------


def propose_clusters(settings: Settings, request: ClusterRequest,
                     progress: Progress | None = None,
                     env: Mapping[str, str] | None = None) -> ClusterProposal:
    """Select a tenant's keywords and ask the engine for clusters; writes nothing."""
    from igny8ctl.cluster.job import propose

    return propose(settings, request, progress, env)


def apply_clusters(settings: Settings, proposal: ClusterProposal, wait_seconds: float = 0.0,
                   plan: str | None = None) -> ClusterApplied:
    """Write a proposal, one journaled transaction per site, refusing changed keywords."""
    from igny8ctl.cluster.writer import apply

    return apply(settings, proposal, wait_seconds, plan)


def load_cluster_plan(settings: Settings, path: Path) -> ClusterProposal:
    """A saved plan, valid in shape and checked against the database (read-only), with
    what it shows (volumes, samples, existing clusters) read from the database."""
    from igny8ctl.cluster.plan import load_plan
    from igny8ctl.cluster.writer import check_plan

    return check_plan(settings, load_plan(path))


def cluster_plan_text(proposal: ClusterProposal) -> str:
    from igny8ctl.cluster.plan import plan_text

    return plan_text(proposal)


# -- migrations (Alembic is imported on use) ------------------------------------------------


def migration_status(settings: Settings) -> MigrationStatus:
    from igny8ctl.migrations import runner

    return runner.status(settings)


def apply_migration(settings: Settings, max_steps: int | None = None,
                    to: str | None = None) -> ApplyResult:
    from igny8ctl.migrations import runner

    return runner.apply(settings, to, max_steps)


def migration_sql(settings: Settings, to: str | None = None) -> str:
    from igny8ctl.migrations import runner

    return runner.offline_sql(settings, to)


def migration_downgrade_plan(settings: Settings, to: str | None = None) -> tuple[str, ...]:
    """The revisions ``downgrade_migration`` would take away, newest first."""
    from igny8ctl.migrations import runner

    return runner.downgrade_target(settings, to)[1]


def migration_weakens(revisions: tuple[str, ...]) -> list[str]:
    """What taking each revision away gives up, in words, for a confirmation prompt."""
    from igny8ctl.migrations.recipe import RECIPES

    return [f"{RECIPES[name].weakens[0].upper()}{RECIPES[name].weakens[1:]}."
            for name in revisions]


def downgrade_migration(settings: Settings, to: str | None = None) -> ApplyResult:
    from igny8ctl.migrations import runner

    return runner.downgrade(settings, to)


def generate_migration(settings: Settings, directory: Path, force: bool = False) -> Generated:
    from igny8ctl.migrations import runner

    return runner.generate(settings, directory, force)


def django_state(settings: Settings, files: list[Path], check: bool = False,
                 model: str | None = None, field: str | None = None) -> DjangoStateResult:
    """Report (``check``) or make state-only Django's migration of the tenant column."""
    from igny8ctl.migrations import django_state as state

    target = state.FieldTarget.of(settings, model, field)
    return state.check(files, target) if check else state.rewrite(settings, files, target)


# -- support: why can't this user or tenant use auto-cluster? (read-only) -----------------


def doctor_user(settings: Settings, user: str) -> UserDiagnosis:
    """Replay what igny8 does for one user (id, username or email), step by step."""
    from igny8ctl.doctor.run import diagnose_user

    return diagnose_user(settings, user)


def doctor_tenant(settings: Settings, tenant: str) -> TenantDiagnosis:
    """The same steps for one account as a whole (slug or id)."""
    from igny8ctl.doctor.run import diagnose_tenant

    return diagnose_tenant(settings, tenant)


__all__ = [
    "apply_clusters", "apply_fix", "apply_migration", "apply_undo", "catalogue",
    "check_history", "cluster_plan_text", "demo", "django_state", "doctor_tenant",
    "doctor_user", "downgrade_migration", "fix_history", "generate_migration",
    "load_cluster_plan", "migration_downgrade_plan", "migration_sql", "migration_status",
    "migration_weakens", "plan_fix", "plan_undo", "propose_clusters", "record_checks",
    "repair", "run_checks",
]
