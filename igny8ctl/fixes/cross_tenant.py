from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.checks.base import CheckContext
from igny8ctl.checks.clusters_counts import recounted
from igny8ctl.checks.tenancy_cross_tenant import TenancyCrossTenant
from igny8ctl.fixes.base import UPDATE, Fix, Operation, Plan
from igny8ctl.tables import MappedTable


class CrossTenant(Fix):
    """Keywords in another tenant's cluster are detached (cluster NULL, status pending) and
    the clusters they leave get their counts recomputed. Keywords or clusters on another
    tenant's site have no safe automatic repair: they are reported, not touched."""

    name = "cross-tenant"
    check = "tenancy.cross-tenant"
    rechecks = ("tenancy.cross-tenant", "clusters.counts")

    def tables(self) -> set[str]:
        return {self.root.name, self.schema.cluster.table.name}

    def target_table(self) -> MappedTable:
        return self.schema.keyword

    def target_condition(self) -> sa.ColumnElement[bool]:
        keyword, cluster = self.schema.keyword, self.schema.cluster
        return sa.exists().where(cluster.id == keyword.cluster_id,
                                 cluster.account_id != keyword.account_id)

    def operations(self, targets: sa.ColumnElement[bool], plan: Plan) -> list[Operation]:
        keyword, cluster = self.schema.keyword, self.schema.cluster
        left = sa.select(keyword.cluster_id).where(targets)
        return [
            # Counts first: afterwards the detached keywords no longer point at their cluster.
            Operation(UPDATE, cluster.table, "recompute counts of the clusters they leave",
                      where=cluster.id.in_(left), values={
                          **recounted(self.schema, same_tenant=True),
                          cluster.updated_at.name: self.now,
                      }),
            Operation(UPDATE, keyword.table, "detach keywords from other tenants' clusters",
                      where=targets, values={
                          keyword.cluster_id.name: None,
                          keyword.status.name: "pending",
                          keyword.updated_at.name: self.now,
                      }),
        ]

    def notes(self, connection: Connection) -> list[str]:
        context = CheckContext(connection, self.schema, self.settings, sample_limit=5)
        keyword_cluster = f"{self.schema.keyword.table.name}.{self.schema.keyword.cluster_id.name}"
        return [
            f"not repaired (needs a human): {f.count} {f.code} link(s) into another tenant, "
            f"ids {', '.join(map(str, f.sample))}"
            for f in TenancyCrossTenant().run(context).findings
            if f.count and f.code != keyword_cluster
        ]
