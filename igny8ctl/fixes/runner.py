"""Plan a fix, then execute exactly that plan.

``plan`` resolves the targets read-only. ``execute`` runs the plan in one transaction or in
batches; each batch locks its planned rows (primary-key order), re-checks that each still
qualifies, and writes only those: a target the app changed meanwhile is skipped and
reported, never modified, and rows the app adds are never seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from igny8ctl.config import Settings
from igny8ctl.db import database_errors
from igny8ctl.dialects import dialect_of
from igny8ctl.errors import Refused
from igny8ctl.fixes.base import Fix, NewAccount, Plan
from igny8ctl.journal.runs import RunInfo
from igny8ctl.journal.tables import primary_key
from igny8ctl.journal.writer import Journal
from igny8ctl.plans import fingerprint
from igny8ctl.render.text import listing


def plan(connection: Connection, fix: Fix, sample_limit: int,
         only: Sequence[int] | None = None) -> Plan:
    """What ``fix`` would change, in the caller's snapshot, bound to the exact targets
    (among ``only``, when a saved plan names them)."""
    blockers = tuple(fix.prepare(connection))
    condition = fix.target_condition()
    if only is not None:
        condition = sa.and_(condition, planned_ids(fix, only))
    key = primary_key(fix.root)
    # OFFSET 0 keeps PostgreSQL from inlining the subquery into the lookups, which would
    # compute each detail once more for every lookup that uses it.
    found = (sa.select(key.label("id"), fix.schema.dialect.digest(fix.watched())
                       .label("digest"), *fix.details())
             .where(condition).order_by(key).offset(0).subquery("targets"))
    rows = connection.execute(
        sa.select(found, *fix.lookups(found)).order_by(found.c.id)).all()
    targets = tuple(int(row[0]) for row in rows)
    digests = tuple(str(row[1]) for row in rows)
    accounts, joins = fix.bind(connection, rows) if targets and not blockers else ((), ())
    bound = Plan(fix.name, fix.params, fix.root.name, targets, digests,
                 target_fingerprint(targets, digests), (), accounts, joins,
                 blockers, tuple(fix.notes(connection)), sample_limit)
    if not targets or blockers:
        return bound
    return replace(bound, changes=fix.changes(connection, condition, bound))


def target_fingerprint(targets: Sequence[int], digests: Sequence[str]) -> str:
    """``igny8ctl.plans.fingerprint`` of the targets' ids and digests, as one row: one
    digest of 100,000 targets costs milliseconds, not one JSON document per target."""
    return fingerprint([["\n".join(f"{i} {d}" for i, d in zip(targets, digests, strict=True))]])


def planned_ids(fix: Fix, ids: Sequence[int]) -> sa.ColumnElement[bool]:
    return fix.schema.dialect.among(primary_key(fix.root), ids)


def changed_targets(connection: Connection, fix: Fix, plan: Plan,
                    ids: Sequence[int]) -> list[int]:
    """Planned targets among ``ids`` whose watched values differ from the plan's digests."""
    key = primary_key(fix.root)
    current = {int(row[0]): str(row[1]) for row in connection.execute(sa.select(
        key, fix.schema.dialect.digest(fix.watched())).where(planned_ids(fix, ids)))}
    planned = dict(zip(plan.targets, plan.digests, strict=True))
    return [i for i in ids if current.get(i) != planned[i]]


def plan_batches(plan: Plan, size: int | None) -> Iterator[Plan]:
    """``plan`` cut into plans of ``size`` targets each (one, unbatched), each holding only
    its own targets' accounts and joins: a batch locks, re-checks and writes its rows alone,
    and the whole plan is gone through once, not once per batch."""
    if not plan.targets:
        return
    step = size or len(plan.targets)
    if step >= len(plan.targets):
        yield plan
        return
    batch_of = {target: number // step for number, target in enumerate(plan.targets)}
    accounts: dict[int, list[NewAccount]] = {}
    joins: dict[int, list[tuple[int, int]]] = {}
    for account in plan.accounts:
        accounts.setdefault(batch_of[account.owner_id], []).append(account)
    for join in plan.joins:
        joins.setdefault(batch_of[join[0]], []).append(join)
    for number, start in enumerate(range(0, len(plan.targets), step)):
        yield replace(plan, targets=plan.targets[start:start + step],
                      digests=plan.digests[start:start + step],
                      accounts=tuple(accounts.get(number, ())),
                      joins=tuple(joins.get(number, ())))


def execute(engine: Engine, connection: Connection, settings: Settings, fix: Fix, plan: Plan,
            batch_size: int | None, saved: bool) -> tuple[str | None, int, int, tuple[int, ...]]:
    """Apply ``plan``: (run id, rows changed, batches committed, skipped target ids).

    A saved plan (``saved``) is refused whole, exit 1, if any target changed since it was
    made; a live one skips the targets that no longer qualify.
    """
    dialect = dialect_of(connection)
    run = RunInfo.new(plan.fix, plan.params.to_dict())
    step, batches, rows_changed = 1, 0, 0
    skipped: list[int] = []
    key = primary_key(fix.root)
    for batch in plan_batches(plan, batch_size):
        chunk = batch.targets
        dialect.prepare_write(connection)
        transaction = connection.begin()
        try:
            dialect.set_timeouts(connection, settings.statement_timeout_ms)
            blockers = fix.prepare(connection)
            if blockers:
                raise Refused(blockers[0] + (f" (after {batches} committed batches of run "
                                             f"{run.run_id})" if batches else ""))
            with database_errors(engine, during=f"fix {fix.name}: locking the planned rows",
                                 statement_timeout_ms=settings.statement_timeout_ms):
                if saved:
                    connection.scalar(sa.select(sa.func.count()).select_from(dialect.lock_rows(
                        sa.select(key).where(planned_ids(fix, chunk)).order_by(key),
                        of=fix.root).subquery()))
                    stale = changed_targets(connection, fix, batch, chunk)
                    if stale:
                        raise stale_refusal(fix, stale, f"{batches} batches of run "
                                            f"{run.run_id} were committed" if batches else "")
                qualifying = lock_qualifying(connection, fix, batch, chunk)
            left = set(chunk).difference(qualifying)
            skipped += sorted(left)
            journal = Journal(connection, run, step)
            journal.locked = {fix.root.name}
            written: dict[str, sa.Table] = {}
            if qualifying:
                for number, operation in enumerate(fix.operations(
                        planned_ids(fix, qualifying), restricted(batch, qualifying)), start=1):
                    written[operation.table.name] = operation.table
                    with database_errors(
                            engine, during=f"fix {fix.name} step {number} "
                                           f"({operation.description})",
                            statement_timeout_ms=settings.statement_timeout_ms):
                        operation.execute(journal)
            if journal.rows_changed == 0 and batches == 0:
                transaction.rollback()
                continue
            rows_changed += journal.rows_changed
            last = chunk[-1] == plan.targets[-1]
            with database_errors(engine, during=f"fix {fix.name}: committing",
                                 statement_timeout_ms=settings.statement_timeout_ms):
                journal.record_run("applied" if last else "partial")
                journal.analyze()
                if batches == 0 and not last:
                    # The next batches are planned for the tables as this one left them
                    # (a table never analyzed looks empty, and its probes turn into scans).
                    for table in written.values():
                        dialect.analyze(connection, table)
                transaction.commit()
        except BaseException:
            if transaction.is_active:
                transaction.rollback()
            raise
        step, batches = journal.step + 1, batches + 1
    return (run.run_id if batches else None), rows_changed, batches, tuple(skipped)


def lock_qualifying(connection: Connection, fix: Fix, plan: Plan,
                    ids: Sequence[int]) -> Sequence[int]:
    """Lock the planned rows among ``ids`` that still qualify, in primary-key order, and
    return their ids. Locking re-evaluates the condition on the newest version of a row
    another transaction changed meanwhile (READ COMMITTED): what no longer qualifies is
    neither locked nor written. Usually all do, so only their number comes back; else the
    same statement runs again for the ids (rows held already are taken at once)."""
    key = primary_key(fix.root)
    locking = dialect_of(connection).lock_rows(
        sa.select(key).where(planned_ids(fix, ids), fix.target_condition(),
                             fix.still_planned(plan)).order_by(key), of=fix.root)
    locked = connection.scalar(sa.select(sa.func.count()).select_from(locking.subquery()))
    if locked == len(ids):
        return ids
    return connection.scalars(locking).all()


def restricted(plan: Plan, ids: Sequence[int]) -> Plan:
    """``plan`` for the targets among ``ids`` only (those that still qualify)."""
    if len(ids) == len(plan.targets):
        return plan
    kept = set(ids)
    return replace(
        plan, targets=tuple(i for i in plan.targets if i in kept),
        digests=tuple(d for i, d in zip(plan.targets, plan.digests, strict=True) if i in kept),
        accounts=tuple(a for a in plan.accounts if a.owner_id in kept),
        joins=tuple(j for j in plan.joins if j[0] in kept))


def stale_refusal(fix: Fix, ids: Sequence[int], committed: str = "") -> Refused:
    """Targets of a saved plan that changed since it was made: refused, exit 1."""
    ordered = sorted(ids)
    return Refused(f"plan refused: {len(ordered)} target(s) of {fix.root.name} changed since "
                   f"it was made (ids {listing(ordered)}); {committed or 'nothing was written'}"
                   ", make a new plan", rows={fix.root.name: ordered})


def plan_body(plan: Plan) -> dict[str, Any]:
    """A plan as the JSON document ``--save-plan`` writes and a preview prints."""
    return {
        "fix": plan.fix, "params": plan.params.to_dict(), "table": plan.table,
        "fingerprint": plan.fingerprint, "target_count": len(plan.targets),
        "targets": [[i, d] for i, d in zip(plan.targets, plan.digests, strict=True)],
        "accounts": [{"owner_id": a.owner_id, "slug": a.slug, "name": a.name}
                     for a in plan.accounts],
        "joins": [[user, account] for user, account in plan.joins],
        "changes": [{"action": c.action, "table": c.table, "count": c.count,
                     "sample": list(c.sample), "description": c.description}
                    for c in plan.changes],
        "blockers": list(plan.blockers), "notes": list(plan.notes),
    }
