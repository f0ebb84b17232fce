from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from igny8ctl.checks.base import Check, CheckContext, Finding, Outcome, Severity
from igny8ctl.db import Igny8Schema


def cross_tenant_links(schema: Igny8Schema) -> list[sa.ForeignKey]:
    """Foreign keys from one tenant-owned table to another, derived from the FK graph.

    Each such link must stay inside one tenant: ``child.account_id = parent.account_id``.
    The tenant column itself (``account_id`` → account) is not such a link.
    """
    tenant = schema.tenant_column
    tables = set(schema.tenant_tables())
    links = [
        fk for table in tables for fk in table.foreign_keys
        if fk.parent.name != tenant and fk.column.table in tables
    ]
    return sorted(links, key=lambda fk: (fk.parent.table.name, fk.parent.name))


class TenancyCrossTenant(Check):
    """Rows whose tenant disagrees with their parent's (e.g. a keyword in another account's
    cluster or site, a cluster on another account's site).

    Why: such rows leak data across tenants and make per-tenant jobs read or write another
    tenant's rows. Every foreign key between tables that carry account_id is checked, so a
    new tenant table is covered without code changes.
    Fix: igny8ctl fix cross-tenant (keyword→cluster links); site mismatches need a human
    """

    id = "tenancy.cross-tenant"
    title = "Links that cross tenants"
    severity = Severity.ERROR
    fix = "igny8ctl fix cross-tenant"

    def run(self, context: CheckContext) -> Outcome:
        schema = context.schema
        schema.account  # noqa: B018 - a missing account table is an error, not a pass
        tenant = schema.tenant_column
        by_child: dict[sa.Table, list[sa.ForeignKey]] = {}
        for fk in cross_tenant_links(schema):
            by_child.setdefault(fk.parent.table, []).append(fk)
        findings: list[Finding] = []
        for child, links in by_child.items():
            # A table without a primary key is still counted; only its ids cannot be listed.
            pk = next(iter(child.primary_key.columns), None)
            # One pass over the child table counts every link at once; ids are fetched
            # only for the links that have offenders.
            joined: sa.FromClause = child
            if context.tenants is not None and pk is not None:
                touching = _touching(context, child, pk, links).subquery("touching")
                joined = child.join(touching, touching.c[pk.name] == pk)
            crossing = []
            parents = []
            for index, fk in enumerate(links):
                parent = fk.column.table.alias(f"parent_{index}")
                parents.append(parent)
                joined = joined.outerjoin(parent, fk.parent == parent.c[fk.column.name])
                # NULL-safe: an orphaned user as a parent is in no tenant, so not the child's.
                crossing.append(sa.and_(parent.c[fk.column.name].is_not(None),
                                        child.c[tenant].is_distinct_from(parent.c[tenant])))
            if context.tenants is not None and pk is None:
                # No key to gather the touching rows by: filter the one pass instead.
                touches = sa.or_(child.c[tenant].in_(context.tenants),
                                 *(parent.c[tenant].in_(context.tenants) for parent in parents))
                crossing = [sa.and_(condition, touches) for condition in crossing]
            counts = context.count_each(joined, crossing)
            for fk, condition, count in zip(links, crossing, counts, strict=True):
                sample = context.sample(sa.select(pk).select_from(joined).where(
                    condition)) if count and pk is not None else ()
                code = f"{child.name}.{fk.parent.name}"
                message = f"{code} in another tenant"
                if pk is None:
                    message += f" ({child.name} has no primary key: ids cannot be listed)"
                findings.append(self.finding(code, int(count), sample, message))
        return Outcome(findings)


def _touching(context: CheckContext, child: sa.Table, pk: sa.Column[Any],
              links: list[sa.ForeignKey]) -> sa.CompoundSelect[Any]:
    """Ids of ``child`` rows a tenant-scoped run covers: the tenants' own rows, and rows of
    any tenant whose parent is one of theirs (each end of a link concerns its tenant)."""
    tenant = context.schema.tenant_column
    parts = [context.restrict(sa.select(pk), child.c[tenant])]
    for index, fk in enumerate(links):
        parent = fk.column.table.alias(f"scope_{index}")
        parts.append(context.restrict(
            sa.select(pk).select_from(child.join(parent, fk.parent == parent.c[fk.column.name])),
            parent.c[tenant]))
    return sa.union(*parts)
