from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.fixes.base import UPDATE, Fix, Operation, Plan
from igny8ctl.tables import MappedTable


class AccountOwners(Fix):
    """Accounts whose owner is missing, gone or in another account get their earliest
    owner-role member as owner, or NULL when there is none."""

    name = "account-owners"
    check = "accounts.owner"
    finding_codes = ("owner-row-missing", "owner-other-account", "owner-missing")
    rechecks = ("accounts.owner",)

    def target_table(self) -> MappedTable:
        return self.schema.account

    def _successor(self) -> sa.ScalarSelect[int]:
        account, user = self.schema.account, self.schema.user
        return (sa.select(user.id)
                .where(user.account_id == account.id, user.role == "owner")
                .order_by(user.date_joined, user.id).limit(1).scalar_subquery())

    def _owner_orphaned(self) -> sa.Exists:
        account, user = self.schema.account, self.schema.user
        return sa.exists().where(user.id == account.owner_id, user.account_id.is_(None))

    def target_condition(self) -> sa.ColumnElement[bool]:
        account, user = self.schema.account, self.schema.user
        owner_inside = sa.exists().where(user.id == account.owner_id,
                                         user.account_id == account.id)
        # An owner without an account is an orphan: fix orphaned-users attaches them to the
        # account they own, which replacing the owner here would prevent.
        return sa.or_(
            sa.and_(account.owner_id.is_not(None), ~owner_inside, ~self._owner_orphaned()),
            sa.and_(account.owner_id.is_(None), self._successor().is_not(None)),
        )

    def notes(self, connection: Connection) -> list[str]:
        account = self.schema.account
        ids = connection.scalars(sa.select(account.id).where(self._owner_orphaned())
                                 .order_by(account.id).limit(10)).all()
        if not ids:
            return []
        return [f"left alone: accounts {', '.join(map(str, ids))} are owned by users without "
                "an account; igny8ctl fix orphaned-users attaches those users to them"]

    def operations(self, targets: sa.ColumnElement[bool], plan: Plan) -> list[Operation]:
        account = self.schema.account
        return [Operation(UPDATE, account.table,
                          "set owner to the earliest owner-role member (or NULL)",
                          where=targets, values={account.owner_id.name: self._successor(),
                                                 account.updated_at.name: self.now})]
