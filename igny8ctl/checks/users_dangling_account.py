from __future__ import annotations

import sqlalchemy as sa

from igny8ctl.checks.base import Check, CheckContext, Outcome, Severity

#: Up to this many missing account ids are probed by value, beyond it by subquery.
MISSING_IDS_LIMIT = 1000


class UsersDanglingAccount(Check):
    """Users whose account_id names an account that does not exist.

    Why: possible when the foreign key was dropped, or on SQLite without PRAGMA
    foreign_keys; such users fail exactly like orphans, and they block the NOT NULL
    migration and the foreign key's validation.
    Fix: igny8ctl fix dangling-accounts --strategy create-account|assign|delete
    """

    id = "users.dangling-account"
    title = "Users pointing at a missing account"
    severity = Severity.ERROR
    fix = "igny8ctl fix dangling-accounts --strategy create-account"

    def run(self, context: CheckContext) -> Outcome:
        user, account = context.schema.user, context.schema.account
        # Probe only the distinct account ids, not every user row, against the account table;
        # the few missing ids then find their users through the index on account_id.
        referenced = (
            context.restrict(sa.select(user.account_id.label("account_id"))
                             .where(user.account_id.is_not(None)), user.account_id)
            .distinct()
            .subquery("referenced")
        )
        missing = sa.select(referenced.c.account_id).where(
            ~sa.exists().where(account.id == referenced.c.account_id)
        )
        missing_ids = context.connection.scalars(
            missing.order_by(referenced.c.account_id).limit(MISSING_IDS_LIMIT + 1)).all()
        dangling = (user.account_id.in_(missing_ids) if len(missing_ids) <= MISSING_IDS_LIMIT
                    else user.account_id.in_(missing))
        count, sample = context.count_and_sample(
            context.restrict(sa.select(user.id).where(dangling), user.account_id))
        message = "account_id names no account"
        if count:
            shown = ", ".join(map(str, missing_ids[:5]))
            more = "" if len(missing_ids) <= 5 else ", ..."
            message += f" (account ids {shown}{more})"
        return Outcome([self.finding("dangling", count, sample, message)])

