from __future__ import annotations

import sqlalchemy as sa

from igny8ctl.checks.clusters_counts import recounted, stale_clusters
from igny8ctl.fixes.base import UPDATE, Fix, Operation, Plan
from igny8ctl.tables import MappedTable


class ClusterCounts(Fix):
    """Recompute keywords_count and volume of clusters from their assigned keywords."""

    name = "cluster-counts"
    check = "clusters.counts"
    rechecks = ("clusters.counts",)

    def target_table(self) -> MappedTable:
        return self.schema.cluster

    def target_condition(self) -> sa.ColumnElement[bool]:
        return self.schema.cluster.id.in_(stale_clusters(self.schema))

    def operations(self, targets: sa.ColumnElement[bool], plan: Plan) -> list[Operation]:
        cluster = self.schema.cluster
        return [Operation(UPDATE, cluster.table, "recompute keywords_count and volume",
                          where=targets, values={**recounted(self.schema),
                                                 cluster.updated_at.name: self.now})]
