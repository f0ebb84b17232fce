"""Repairs shared by orphaned and dangling users: create an account, assign one, or delete."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.errors import ConfigError
from igny8ctl.fixes.base import INSERT, UPDATE, Fix, Operation
from igny8ctl.fixes.cascade import cascade_delete, referencing_rows
from igny8ctl.journal.tables import primary_key
from igny8ctl.tables import MappedTable


class Strategy(StrEnum):
    CREATE_ACCOUNT = "create-account"
    ASSIGN = "assign"
    DELETE = "delete"


class UserRepair(Fix):
    """Params: strategy, plan (slug), role, account (slug), email_domain, user_ids,
    cascade, set (extra account column values)."""

    def target_table(self) -> MappedTable:
        return self.schema.user

    def broken(self) -> sa.ColumnElement[bool]:
        raise NotImplementedError

    def target_condition(self) -> sa.ColumnElement[bool]:
        user = self.schema.user
        condition = self.broken()
        if self.params.get("user_ids"):
            condition = sa.and_(condition, user.id.in_(self.params["user_ids"]))
        if self.params.get("email_domain"):
            domain = str(self.params["email_domain"]).lstrip("@").lower()
            condition = sa.and_(condition, sa.func.lower(user.email).endswith(
                f"@{domain}", autoescape=True))
        return condition

    @property
    def strategy(self) -> Strategy:
        try:
            return Strategy(self.params.get("strategy") or "")
        except ValueError:
            raise ConfigError("choose --strategy create-account, assign or delete") from None

    def operations(self, targets: sa.ColumnElement[bool]) -> list[Operation]:
        if self.strategy is Strategy.CREATE_ACCOUNT:
            return self._create_accounts(targets)
        if self.strategy is Strategy.ASSIGN:
            values: dict[str, Any] = {self.schema.user.account_id.name: self._account}
            if self.params.get("role"):
                values[self.schema.user.role.name] = self.params["role"]
            return [Operation(UPDATE, self.root, f"attach users to {self.params['account']}",
                              where=targets, values=values)]
        return cascade_delete(self.schema, self.root, targets)

    def prepare(self, connection: Connection) -> list[str]:
        if self.strategy is Strategy.CREATE_ACCOUNT:
            self._constants = self._account_values(connection)
            return self._missing_account_columns()
        if self.strategy is Strategy.ASSIGN:
            self._account = self._account_id(connection)
        elif not self.params.get("cascade"):
            refs = referencing_rows(connection, self.schema, self.root, self.window(None))
            if refs:
                listed = ", ".join(f"{where} ({rows} rows)" for where, rows in refs)
                return [f"users are still referenced by {listed}; pass --cascade to delete "
                        "or clear those rows as Django would"]
        return []

    def _account_id(self, connection: Connection) -> int:
        slug = self.params.get("account")
        if not slug:
            raise ConfigError("--strategy assign needs --account SLUG")
        account = self.schema.account
        found = connection.scalar(sa.select(account.id).where(account.slug == slug))
        if found is None:
            raise ConfigError(f"no account with slug {slug!r}")
        return int(found)

    def _plan_id(self, connection: Connection) -> int:
        slug = self.params.get("plan") or "free"
        plan = self.schema.plan
        found = connection.scalar(sa.select(plan.id).where(plan.slug == slug))
        if found is None:
            raise ConfigError(f"plan {slug!r} does not exist: pass --plan SLUG of an existing plan")
        return int(found)

    def _account_values(self, connection: Connection) -> dict[str, Any]:
        """Column -> value for a new account, before the per-user columns."""
        account = self.schema.account
        values: dict[str, Any] = {
            account.credits.name: 0,
            account.status.name: "active",
            account.created_at.name: self.now,
            account.updated_at.name: self.now,
            account.plan_id.name: self._plan_id(connection),
        }
        for column, value in dict(self.params.get("set") or {}).items():
            if column not in account.table.c:
                raise ConfigError(f"--set {column}: {account.table.name} has no such column")
            values[column] = value
        return values

    def _missing_account_columns(self) -> list[str]:
        account = self.schema.account
        provided = {account.name.name, account.slug.name, account.owner_id.name,
                    *self._constants}
        missing = [
            column.name for column in account.table.c
            if not column.nullable and column.server_default is None
            and column.name not in provided and column is not primary_key(account.table)
        ]
        if missing:
            return [f"cannot create accounts: {account.table.name}.{missing[0]} is NOT NULL "
                    f"without a default; give it a value with --set {missing[0]}=VALUE"]
        return []

    def _create_accounts(self, targets: sa.ColumnElement[bool]) -> list[Operation]:
        user, account = self.schema.user, self.schema.account
        slug_length = getattr(account.slug.type, "length", None) or 50
        name_length = getattr(account.name.type, "length", None) or 150
        owned = sa.exists().where(account.owner_id == user.id)
        full_name = sa.func.trim(user.first_name + " " + user.last_name)
        name = sa.case((full_name != "", full_name), else_=user.username)
        base = sa.func.coalesce(
            sa.func.nullif(self.schema.dialect.slugify_sql(user.username, slug_length), ""),
            sa.func.nullif(self.schema.dialect.slugify_sql(user.email, slug_length), ""),
            "user",
        )
        candidates = (
            sa.select(user.id.label("user_id"), sa.func.substr(name, 1, name_length).label("name"),
                      base.label("base"),
                      sa.func.count().over(partition_by=base).label("same_base"))
            .where(targets, ~owned)
            .subquery("candidates")
        )
        id_text = sa.cast(candidates.c.user_id, sa.String)
        suffixed = (sa.func.rtrim(sa.func.substr(
            candidates.c.base, 1, slug_length - 2 - sa.func.length(id_text)), "-")
            + "--" + id_text)
        taken = sa.exists().where(account.slug == candidates.c.base)
        slug = sa.case((sa.and_(candidates.c.same_base == 1, ~taken), candidates.c.base),
                       else_=suffixed)
        constants = self._constants
        columns = [account.owner_id.name, account.name.name, account.slug.name, *constants]
        source = sa.select(
            candidates.c.user_id, candidates.c.name, slug,
            *(sa.literal(value, type_=account.table.c[column].type)
              for column, value in constants.items()),
        ).order_by(candidates.c.user_id)
        owned_account = (sa.select(sa.func.min(account.id)).where(account.owner_id == user.id)
                         .scalar_subquery())
        values: dict[str, Any] = {user.account_id.name: owned_account}
        role = self.params.get("role", "owner")
        if role:
            values[user.role.name] = role
        attach = "attach each user to the account they own" + (f", role {role}" if role else "")
        return [
            Operation(INSERT, account.table, "create one account per user (sample: owner ids)",
                      columns=columns, source=source),
            Operation(UPDATE, user.table, attach, where=targets, values=values),
        ]
