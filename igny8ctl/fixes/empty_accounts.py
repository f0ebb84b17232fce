from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.fixes.base import Fix, Operation, Plan
from igny8ctl.fixes.cascade import cascade_delete, has_references, referencing_rows
from igny8ctl.fixes.params import EmptyAccountsParams
from igny8ctl.tables import MappedTable


class EmptyAccounts(Fix):
    """Delete accounts that have no users. Accounts that still own tenant data are left
    alone and listed unless ``cascade``; the system account is never touched."""

    name = "empty-accounts"
    check = "accounts.owner"
    finding_codes = ("no-users",)
    rechecks = ("accounts.owner", "users.dangling-account", "tenancy.cross-tenant",
                "clusters.counts")
    params: EmptyAccountsParams

    def target_table(self) -> MappedTable:
        return self.schema.account

    def _empty(self) -> sa.ColumnElement[bool]:
        account, user = self.schema.account, self.schema.user
        return sa.and_(~sa.exists().where(user.account_id == account.id),
                       account.slug != self.settings.system_account)

    def target_condition(self) -> sa.ColumnElement[bool]:
        if self.params.cascade:
            return self._empty()
        return sa.and_(self._empty(), ~has_references(self.schema, self.root))

    def operations(self, targets: sa.ColumnElement[bool], plan: Plan) -> list[Operation]:
        return cascade_delete(self.schema, self.root, targets)

    def notes(self, connection: Connection) -> list[str]:
        if self.params.cascade:
            return []
        kept = sa.and_(self._empty(), has_references(self.schema, self.root))
        account = self.schema.account
        ids = connection.scalars(sa.select(account.id).where(kept).order_by(account.id)
                                 .limit(10)).all()
        if not ids:
            return []
        refs = referencing_rows(connection, self.schema, self.root, kept)
        listed = ", ".join(f"{where} {rows}" for where, rows in refs)
        return [f"kept (they still own tenant data: {listed}): accounts "
                f"{', '.join(map(str, ids))}; pass --cascade to delete the data too"]
