"""The fix catalogue: one fix per module, registered here by name."""

from __future__ import annotations

from igny8ctl.fixes.account_owners import AccountOwners
from igny8ctl.fixes.base import Fix
from igny8ctl.fixes.cluster_counts import ClusterCounts
from igny8ctl.fixes.cross_tenant import CrossTenant
from igny8ctl.fixes.dangling_accounts import DanglingAccounts
from igny8ctl.fixes.empty_accounts import EmptyAccounts
from igny8ctl.fixes.orphaned_users import OrphanedUsers

REGISTRY: dict[str, type[Fix]] = {
    fix.name: fix
    for fix in (OrphanedUsers, DanglingAccounts, CrossTenant, ClusterCounts, EmptyAccounts,
                AccountOwners)
}

__all__ = ["REGISTRY", "Fix"]
