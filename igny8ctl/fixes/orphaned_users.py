from __future__ import annotations

import sqlalchemy as sa

from igny8ctl.fixes.user_strategies import UserRepair


class OrphanedUsers(UserRepair):
    """Users with account_id NULL: give each an account, attach them to one, or delete them."""

    name = "orphaned-users"
    check = "users.orphaned"

    def broken(self) -> sa.ColumnElement[bool]:
        return self.schema.user.account_id.is_(None)
