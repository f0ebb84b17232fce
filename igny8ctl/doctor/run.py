"""Diagnose one user or one tenant in a single read-only snapshot."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from igny8ctl.config import Settings
from igny8ctl.db import create_engine, display_url, read_only, reflect
from igny8ctl.doctor.base import Step, StepResult, TenantDiagnosis, UserDiagnosis
from igny8ctl.doctor.lookup import find_user, load_account
from igny8ctl.doctor.probe import Probe
from igny8ctl.doctor.steps import TENANT_STEPS, USER_STEPS


def diagnose_user(settings: Settings, query: str) -> UserDiagnosis:
    """Replay, in order, what igny8 does for the user ``query`` names (id, username, email)."""
    engine = create_engine(settings)
    started_at, started = datetime.now(UTC), time.perf_counter()
    with read_only(engine, settings) as connection:
        schema = reflect(connection, settings)
        user, matched_by = find_user(connection, schema, query)
        account = (load_account(connection, schema, user.account_id)
                   if user.account_id is not None else None)
        steps = _observe(USER_STEPS, Probe(connection, schema, settings, account, user,
                                           _covered(USER_STEPS)))
    return UserDiagnosis(query=query, steps=steps, database=display_url(engine.url),
                         started_at=started_at, duration_s=time.perf_counter() - started,
                         matched_by=matched_by, user=user, account=account)


def diagnose_tenant(settings: Settings, query: str) -> TenantDiagnosis:
    """The same steps for an account as a whole (by slug or id)."""
    from igny8ctl.tenants import find_tenant

    engine = create_engine(settings)
    started_at, started = datetime.now(UTC), time.perf_counter()
    with read_only(engine, settings) as connection:
        schema = reflect(connection, settings)
        account = load_account(connection, schema, find_tenant(connection, schema, query).id)
        assert account is not None, "find_tenant returned an account that does not exist"
        steps = _observe(TENANT_STEPS, Probe(connection, schema, settings, account,
                                             covered=_covered(TENANT_STEPS)))
    return TenantDiagnosis(query=query, steps=steps, database=display_url(engine.url),
                           started_at=started_at, duration_s=time.perf_counter() - started,
                           account=account)


def _covered(steps: Sequence[Step]) -> frozenset[str]:
    return frozenset(check for step in steps for check in step.covers)


def _observe(steps: Sequence[Step], probe: Probe) -> tuple[StepResult, ...]:
    results = []
    for number, step in enumerate(steps, 1):
        seen = step.observe(probe)
        results.append(StepResult(number, step.id, step.title, seen.status, seen.message,
                                  seen.evidence, seen.fix))
    return tuple(results)
