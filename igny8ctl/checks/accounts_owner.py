from __future__ import annotations

import sqlalchemy as sa

from igny8ctl.checks.base import Check, CheckContext, Outcome, Severity


class AccountsOwner(Check):
    """Accounts whose owner is missing, points at no user, or belongs to another account;
    and accounts with no users at all.

    Why: the owner administers the tenant; an owner outside the account can act on it from
    another tenant, and a missing owner row makes the account unmanageable. Accounts
    without users (other than the system account, which needs none) are usually left
    behind by deleted orphans.
    Fix: igny8ctl fix account-owners; igny8ctl fix empty-accounts --delete
    """

    id = "accounts.owner"
    title = "Account owners and empty accounts"
    severity = Severity.ERROR
    fix = "igny8ctl fix account-owners"

    def run(self, context: CheckContext) -> Outcome:
        # One statement per defect: each gets its own best plan (index probes for owners,
        # an anti-join for members), which beats one pass that must join every user.
        account, user = context.schema.account, context.schema.user
        owner = user.table.alias("owner")
        owner_id, owner_account = owner.c[user.id.name], owner.c[user.account_id.name]
        with_owner = sa.select(account.id).select_from(
            account.table.outerjoin(owner, owner_id == account.owner_id))
        cases = [
            ("owner-row-missing", Severity.ERROR, "owner_id names no user",
             with_owner.where(account.owner_id.is_not(None), owner_id.is_(None))),
            ("owner-other-account", Severity.ERROR, "owner outside the account",
             with_owner.where(owner_id.is_not(None),
                              sa.or_(owner_account.is_(None), owner_account != account.id))),
            ("owner-missing", Severity.WARNING, "no owner",
             sa.select(account.id).where(account.owner_id.is_(None))),
            ("no-users", Severity.WARNING, "no users",
             sa.select(account.id).where(~sa.exists().where(user.account_id == account.id),
                                         account.slug != context.settings.system_account)),
        ]
        findings = []
        for code, severity, message, query in cases:
            count, sample = context.count_and_sample(context.restrict(query, account.id))
            findings.append(self.finding(code, count, sample, message, severity))
        return Outcome(findings)
