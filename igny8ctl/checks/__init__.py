"""The check catalogue: one check per module, registered here in display order."""

from __future__ import annotations

from igny8ctl.checks.accounts_owner import AccountsOwner
from igny8ctl.checks.ai_settings import AiSettings
from igny8ctl.checks.base import Check, CheckInfo, CheckResult, Finding, Severity
from igny8ctl.checks.clusters_counts import ClustersCounts
from igny8ctl.checks.schema_tenant_keys import SchemaTenantKeys
from igny8ctl.checks.schema_user_account_fk import SchemaUserAccountFk
from igny8ctl.checks.schema_user_account_nullable import SchemaUserAccountNullable
from igny8ctl.checks.tenancy_cross_tenant import TenancyCrossTenant
from igny8ctl.checks.users_dangling_account import UsersDanglingAccount
from igny8ctl.checks.users_orphaned import UsersOrphaned

REGISTRY: tuple[type[Check], ...] = (
    UsersOrphaned,
    UsersDanglingAccount,
    SchemaUserAccountNullable,
    SchemaUserAccountFk,
    AccountsOwner,
    TenancyCrossTenant,
    SchemaTenantKeys,
    AiSettings,
    ClustersCounts,
)

__all__ = ["REGISTRY", "Check", "CheckInfo", "CheckResult", "Finding", "Severity"]
