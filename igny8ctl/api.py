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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.checks import REGISTRY, Check, Severity
from igny8ctl.checks.base import CheckContext, run_check
from igny8ctl.config import Settings
from igny8ctl.db import (
    Igny8Schema,
    connect,
    create_engine,
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
    from igny8ctl.history import CheckHistory
    from igny8ctl.journal.runs import RunSummary
    from igny8ctl.journal.undo import UndoStep
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
        outcome_results = tuple(run_check(check, context) for check in checks)
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


@dataclass(frozen=True)
class UndoPlan:
    run: RunSummary
    steps: list[UndoStep]
    conflicts: list[tuple[str, list[int]]]


def _make_fix(name: str, connection: Connection, settings: Settings,
              params: Mapping[str, Any]) -> Fix:
    from igny8ctl.fixes import REGISTRY
    from igny8ctl.fixes.base import utcnow

    if name not in REGISTRY:
        raise ConfigError(f"unknown fix {name!r} (fixes: {', '.join(REGISTRY)})")
    return REGISTRY[name](reflect(connection, settings), settings, utcnow(), params)


def _preview(fix: Fix, connection: Connection, sample_limit: int,
             with_changes: bool = True) -> Plan:
    """The plan; without ``with_changes`` only what apply needs (targets, blockers)."""
    from igny8ctl.fixes.base import Plan

    blockers = tuple(fix.prepare(connection))
    condition = fix.window(None)
    targets = int(connection.scalar(
        sa.select(sa.func.count()).select_from(fix.root).where(condition)) or 0)
    changes = tuple(op.preview(connection, sample_limit) for op in fix.operations(condition)) \
        if targets and with_changes else ()
    return Plan(fix.name, _public(fix.params), targets, changes, blockers,
                tuple(fix.notes(connection)))


def _public(params: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value not in (None, False, [], {})}


def plan_fix(settings: Settings, name: str, params: Mapping[str, Any],
             sample_limit: int = 10) -> Plan:
    """What ``name`` would change, computed read-only with the same statements as apply."""
    engine = create_engine(settings)
    with read_only(engine, settings) as connection:
        return _preview(_make_fix(name, connection, settings, params), connection, sample_limit)


def apply_fix(settings: Settings, name: str, params: Mapping[str, Any],
              batch_size: int | None = None, wait_seconds: float = 0,
              sample_limit: int = 10) -> FixResult:
    """Apply a fix under its lock, journaled, in one transaction or in committed batches.

    Each batch is defined by the current state (the next ``batch_size`` targets by id), so
    a run killed at any point leaves whole batches behind, and running it again finishes
    the work without redoing any of it.
    """
    from igny8ctl.fixes.base import FixResult
    from igny8ctl.journal.runs import RunInfo
    from igny8ctl.journal.tables import primary_key
    from igny8ctl.journal.writer import Journal

    engine = create_engine(settings)
    with job_lock(engine, f"fix:{name}", wait_seconds), connect(engine) as connection:
        with connection.begin():
            fix = _make_fix(name, connection, settings, params)
            plan = _preview(fix, connection, sample_limit, with_changes=False)
        if plan.blockers:
            raise Refused(plan.blockers[0])
        run = RunInfo.new(name, plan.params)
        step, batches, rows_changed = 1, 0, 0
        while plan.targets:
            transaction = connection.begin()
            dialect_of(connection).set_timeouts(connection, settings.statement_timeout_ms)
            blockers = fix.prepare(connection)
            if blockers:
                transaction.rollback()
                raise Refused(blockers[0] + (f" (after {batches} committed batches of run "
                                             f"{run.run_id})" if batches else ""))
            upto = None
            if batch_size:
                key = primary_key(fix.root)
                upto = connection.scalar(sa.select(key).where(fix.window(None))
                                         .order_by(key).limit(1).offset(batch_size - 1))
            journal = Journal(connection, run, step)
            for operation in fix.operations(fix.window(upto)):
                operation.execute(journal)
            if journal.rows_changed == 0 and (batches == 0 or upto is not None):
                transaction.rollback()
                break
            rows_changed += journal.rows_changed
            journal.record_run("applied" if upto is None else "partial")
            transaction.commit()
            step, batches = journal.step + 1, batches + 1
            if upto is None:
                break
    remaining = _remaining(settings, fix)
    return FixResult(plan, run.run_id if batches else None, rows_changed, batches, remaining)


def _remaining(settings: Settings, fix: Fix) -> int:
    report = run_checks(settings, include=[fix.check], sample_limit=0)
    return sum(f.count for r in report.results for f in r.findings
               if fix.finding_codes is None or f.code in fix.finding_codes)


def fix_history(settings: Settings, limit: int = 50, job: str | None = None) -> list[RunSummary]:
    from igny8ctl.journal.runs import list_runs

    engine = create_engine(settings)
    with read_only(engine, settings) as connection:
        return list_runs(connection, limit, job)


def _undoable(connection: Connection, run_id: str) -> RunSummary:
    from igny8ctl.journal.runs import get_run

    run = get_run(connection, run_id)
    if run.undone_by:
        raise Refused(f"run {run_id} was already undone by run {run.undone_by}")
    return run


def plan_undo(settings: Settings, run_id: str) -> UndoPlan:
    from igny8ctl.journal.undo import run_steps, undo_conflicts

    engine = create_engine(settings)
    with read_only(engine, settings) as connection:
        run = _undoable(connection, run_id)
        schema = reflect(connection, settings)
        return UndoPlan(run, run_steps(connection, run_id),
                        undo_conflicts(connection, schema.metadata, run_id))


def apply_undo(settings: Settings, run_id: str, wait_seconds: float = 0) -> tuple[str, int]:
    """Restore what ``run_id`` changed, in one journaled transaction; returns (run, rows)."""
    from igny8ctl.journal.runs import RunInfo
    from igny8ctl.journal.undo import undo
    from igny8ctl.journal.writer import Journal

    engine = create_engine(settings)
    with job_lock(engine, "undo", wait_seconds), connect(engine) as connection, \
            connection.begin():
        original = _undoable(connection, run_id)
        schema = reflect(connection, settings)
        dialect_of(connection).set_timeouts(connection, settings.statement_timeout_ms)
        journal = Journal(connection, RunInfo.new("undo", {"run": run_id, "of": original.job},
                                                  undoes=run_id))
        rows = undo(journal, schema.metadata, run_id)
        journal.record_run("applied")
        return journal.run.run_id, rows


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


def repair_params(fix: str, action: str) -> dict[str, Any] | None:
    """Parameters for ``fix`` under a policy action, or None when the policy says off."""
    if action == "off":
        return None
    if fix in ("orphaned-users", "dangling-accounts"):
        strategy, _, argument = action.partition(":")
        if strategy == "create-account":
            return {"strategy": strategy, "plan": argument or "free", "role": "owner"}
        if strategy == "assign" and argument:
            return {"strategy": strategy, "account": argument}
        if strategy in ("delete", "delete-cascade"):
            return {"strategy": "delete", "cascade": strategy == "delete-cascade"}
    elif fix == "empty-accounts" and action in ("delete", "delete-cascade"):
        return {"delete": True, "cascade": action == "delete-cascade"}
    elif fix in ("account-owners", "cross-tenant", "cluster-counts") and action == "on":
        return {}
    raise ConfigError(f"repair policy: {fix} = {action!r} is not an action for this fix "
                      "(see igny8ctl.example.toml)")


def repair(
    settings: Settings,
    fail_on: Severity | None = Severity.ERROR,
    batch_size: int | None = 10_000,
    on_repair: Callable[[Repair], None] | None = None,
) -> RepairResult:
    """Check, apply what the policy allows, check again; one repair at a time per database."""
    from igny8ctl.fixes import REGISTRY

    policy = dict(settings.repair_policy) or DEFAULT_REPAIR_POLICY
    unknown = sorted(set(policy) - set(REGISTRY))
    if unknown:
        raise ConfigError(f"repair policy names unknown fix {unknown[0]!r} "
                          f"(fixes: {', '.join(REGISTRY)})")
    planned = [(fix, policy[fix], params) for fix in REPAIR_ORDER if fix in policy
               if (params := repair_params(fix, policy[fix])) is not None]
    engine = create_engine(settings)
    with job_lock(engine, "repair"):
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
    """A saved plan, valid in shape and checked against the database (read-only)."""
    from igny8ctl.cluster.plan import load_plan
    from igny8ctl.cluster.writer import check_plan

    proposal = load_plan(path)
    check_plan(settings, proposal)
    return proposal


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
