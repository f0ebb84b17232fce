from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.fixes.base import Fix, Operation, Plan
from igny8ctl.fixes.cascade import cascade_delete, has_references, referencing_rows
from igny8ctl.fixes.params import EmptyAccountsParams
from igny8ctl.tables import MappedTable


class EmptyAccounts(Fix):
    """Delete accounts that have no users. Accounts that still own tenant data are left
    alone and listed unless ``cascade``; the system account is never touched, and nothing
    is deleted while the configured system account cannot be found (a misspelt
    ``system_account`` must not make the real one look like any other). An account whose
    owner is a user is not empty: an orphaned owner joins it (``orphaned-users``), an owner
    elsewhere is an ``account-owners`` repair."""

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
                       ~sa.exists().where(user.id == account.owner_id),
                       account.slug != self.settings.system_account)

    def prepare(self, connection: Connection) -> list[str]:
        account = self.schema.account
        slug = self.settings.system_account
        if connection.scalar(sa.select(sa.func.count()).where(account.slug == slug)):
            return []
        return [f"the system account {slug!r} (system_account in igny8ctl.toml) does not "
                "exist: refusing to delete accounts, one of them could be the system account "
                "under another slug"]

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
