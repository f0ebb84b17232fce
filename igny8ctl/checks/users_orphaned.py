from __future__ import annotations

import sqlalchemy as sa

from igny8ctl.checks.base import Check, CheckContext, Outcome, Severity


class UsersOrphaned(Check):
    """Users whose account_id is NULL.

    Why: every tenant-scoped feature (auto-cluster, automation) reads the account from the
    user; an orphaned user fails with "Account is required".
    Fix: igny8ctl fix orphaned-users --strategy create-account|assign|delete
    """

    id = "users.orphaned"
    title = "Users without an account"
    severity = Severity.ERROR
    fix = "igny8ctl fix orphaned-users --strategy create-account"
    tenant_scoped = False

    def run(self, context: CheckContext) -> Outcome:
        user = context.schema.user
        count, sample = context.count_and_sample(
            sa.select(user.id).where(user.account_id.is_(None))
        )
        return Outcome([self.finding("orphaned", count, sample, "account_id is NULL")])
