"""Reading a saved fix plan back: untrusted input, validated whole before anything is written.

The frame (kind, version, size) is ``igny8ctl.plans.read_plan``'s; the body is checked here
for types, bounds and consistency (ids within bigint, no duplicates, every target either
gets an account or joins one, the fingerprint matching the targets). That the ids are
targets of the fix in the database is checked by ``api.apply_saved_fix`` before it writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from igny8ctl.errors import ConfigError
from igny8ctl.fixes.base import Change, NewAccount, Plan
from igny8ctl.fixes.params import BIGINT_MAX, PARAMS, Strategy, UserRepairParams, parse_params
from igny8ctl.fixes.runner import target_fingerprint
from igny8ctl.plans import read_plan

KIND = "fix.plan"
RowId = Annotated[int, Field(ge=1, le=BIGINT_MAX, strict=True)]
Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
Text = Annotated[str, Field(max_length=1000)]


class _Closed(BaseModel):
    """Unknown keys are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Account(_Closed):
    owner_id: RowId
    slug: Annotated[str, Field(pattern=r"^[a-z0-9]+(-{1,2}[a-z0-9]+)*$", max_length=255)]
    name: Annotated[str, Field(max_length=1000)]


class _Change(_Closed):
    action: Annotated[str, Field(pattern="^(insert|update|delete)$")]
    table: Text
    count: Annotated[int, Field(ge=0, le=BIGINT_MAX, strict=True)]
    sample: Annotated[list[RowId], Field(max_length=100_000)]
    description: Text


class _Body(_Closed):
    schema_version: Annotated[int, Field(strict=True)]
    tool: dict[str, Any]
    kind: str
    fix: Annotated[str, Field(max_length=100)]
    params: dict[str, Any]
    table: Text
    fingerprint: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    target_count: Annotated[int, Field(ge=0, le=BIGINT_MAX, strict=True)]
    targets: Annotated[list[tuple[RowId, Digest]], Field(max_length=50_000_000)]
    accounts: Annotated[list[_Account], Field(max_length=50_000_000)]
    joins: Annotated[list[tuple[RowId, RowId]], Field(max_length=50_000_000)]
    changes: Annotated[list[_Change], Field(max_length=100)]
    blockers: Annotated[list[Text], Field(max_length=100)]
    notes: Annotated[list[Text], Field(max_length=100)]


def load(path: Path) -> Plan:
    """The plan at ``path``; a usage error (exit 2) naming the first thing wrong with it."""
    document = read_plan(path, KIND)
    try:
        body = _Body.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{path}: not a valid fix plan: {where}: {first['msg']}",
                          key="PLAN") from None
    if body.fix not in PARAMS:
        raise ConfigError(f"{path}: unknown fix {body.fix[:60]!r}", key="PLAN")
    params = parse_params(body.fix, body.params, prefix="params.")
    ids = [i for i, _ in body.targets]
    if len(set(ids)) != len(ids) or ids != sorted(ids):
        raise ConfigError(f"{path}: targets must be distinct ids in increasing order",
                          key="PLAN")
    if body.target_count != len(ids):
        raise ConfigError(f"{path}: target_count does not match the targets", key="PLAN")
    if target_fingerprint(ids, [d for _, d in body.targets]) != body.fingerprint:
        raise ConfigError(f"{path}: the fingerprint does not match the targets (edited?)",
                          key="PLAN")
    _check_bindings(path, params, set(ids), body)
    if body.blockers:
        raise ConfigError(f"{path}: the plan is blocked: {body.blockers[0][:200]}",
                          key="PLAN")
    return Plan(
        body.fix, params, body.table, tuple(ids), tuple(d for _, d in body.targets),
        body.fingerprint,
        tuple(Change(c.action, c.table, c.count, tuple(c.sample), c.description)
              for c in body.changes),
        tuple(NewAccount(a.owner_id, a.slug, a.name) for a in body.accounts),
        tuple((user, account) for user, account in body.joins),
        (), tuple(body.notes),
    )


def _check_bindings(path: Path, params: Any, targets: set[int], body: _Body) -> None:
    creates = [a.owner_id for a in body.accounts]
    joins = [user for user, _ in body.joins]
    creating = isinstance(params, UserRepairParams) and \
        params.strategy is Strategy.CREATE_ACCOUNT
    if not creating:
        if creates or joins:
            raise ConfigError(f"{path}: {body.fix} creates and joins no accounts", key="PLAN")
        return
    if len(set(creates)) != len(creates) or len(set(joins)) != len(joins):
        raise ConfigError(f"{path}: a user appears twice among accounts or joins", key="PLAN")
    if set(creates) & set(joins) or set(creates) | set(joins) != targets:
        raise ConfigError(f"{path}: every target must get exactly one account or join one, "
                          "and nothing else may", key="PLAN")
    slugs = [a.slug for a in body.accounts]
    if len(set(slugs)) != len(slugs):
        raise ConfigError(f"{path}: two accounts share a slug", key="PLAN")
