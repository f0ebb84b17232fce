from __future__ import annotations

import sqlalchemy as sa

from igny8ctl.fixes.user_strategies import UserRepair


class DanglingAccounts(UserRepair):
    """Users whose account_id names no account: the same strategies as for orphans."""

    name = "dangling-accounts"
    check = "users.dangling-account"

    def broken(self) -> sa.ColumnElement[bool]:
        user, account = self.schema.user, self.schema.account
        return sa.and_(user.account_id.is_not(None),
                       ~sa.exists().where(account.id == user.account_id))
