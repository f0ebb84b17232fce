from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from igny8ctl.checks.base import Check, CheckContext, Outcome, Severity
from igny8ctl.db import Igny8Schema


def cluster_totals(schema: Igny8Schema,
                   clusters: sa.Select[Any] | None = None) -> sa.Subquery:
    """Per cluster (of ``clusters``, else every one), the number and total volume of the
    keywords assigned to it."""
    keyword = schema.keyword
    assigned: sa.ColumnElement[bool] = keyword.cluster_id.is_not(None)
    if clusters is not None:
        assigned = sa.and_(assigned, keyword.cluster_id.in_(clusters))
    return (
        sa.select(
            keyword.cluster_id.label("cluster_id"),
            sa.func.count().label("keywords_count"),
            sa.func.coalesce(sa.func.sum(keyword.volume), 0).label("volume"),
        )
        .where(assigned)
        .group_by(keyword.cluster_id)
        .subquery("totals")
    )


def recounted(schema: Igny8Schema, same_tenant: bool = False) -> dict[str, Any]:
    """Column -> correlated subquery: each cluster's keywords_count and volume, recomputed.

    The one rule for cluster counts (the fixes and the cluster job use it); with
    ``same_tenant`` only keywords of the cluster's own account count, for writers that are
    about to detach the others.
    """
    keyword, cluster = schema.keyword, schema.cluster
    members = keyword.table.alias("members")
    assigned = members.c[keyword.cluster_id.name] == cluster.id
    if same_tenant:
        assigned = sa.and_(assigned, members.c[keyword.account_id.name] == cluster.account_id)
    return {
        cluster.keywords_count.name: sa.select(sa.func.count()).select_from(members)
        .where(assigned).scalar_subquery(),
        cluster.volume.name: sa.select(
            sa.func.coalesce(sa.func.sum(members.c[keyword.volume.name]), 0))
        .where(assigned).scalar_subquery(),
    }


def stale_clusters(schema: Igny8Schema,
                   tenants: tuple[int, ...] | None = None) -> sa.Select[tuple[int]]:
    """Clusters whose counts disagree with their keywords; only ``tenants``' if given, then
    read through the indexes on account_id and cluster_id rather than every keyword."""
    cluster = schema.cluster
    own: sa.Select[Any] | None = None
    if tenants is not None:
        scoped = cluster.table.alias("scoped")
        own = sa.select(scoped.c[cluster.id.name]).where(
            scoped.c[cluster.account_id.name].in_(tenants))
    totals = cluster_totals(schema, own)
    query = (
        sa.select(cluster.id)
        .select_from(cluster.table.outerjoin(totals, totals.c.cluster_id == cluster.id))
        .where(sa.or_(
            cluster.keywords_count != sa.func.coalesce(totals.c.keywords_count, 0),
            cluster.volume != sa.func.coalesce(totals.c.volume, 0),
        ))
    )
    return query if tenants is None else query.where(cluster.account_id.in_(tenants))


class ClustersCounts(Check):
    """Clusters whose keywords_count or volume disagree with their assigned keywords.

    Why: both are denormalised copies; when they drift, the planner shows wrong sizes and
    volumes and sorts clusters wrongly.
    Fix: igny8ctl fix cluster-counts
    """

    id = "clusters.counts"
    title = "Cluster counts and volumes"
    severity = Severity.WARNING
    fix = "igny8ctl fix cluster-counts"

    def run(self, context: CheckContext) -> Outcome:
        count, sample = context.count_and_sample(
            stale_clusters(context.schema, context.tenants))
        return Outcome([self.finding("stale", count, sample,
                                     "stale keywords_count/volume")])
