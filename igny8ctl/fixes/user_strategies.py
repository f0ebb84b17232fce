"""Repairs shared by orphaned and dangling users: create an account, assign one, or delete."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from igny8ctl.dialects import dialect_of
from igny8ctl.errors import ConfigError
from igny8ctl.fixes.base import INSERT, UPDATE, Change, Fix, NewAccount, Operation, Plan
from igny8ctl.fixes.cascade import cascade_delete, referencing_rows
from igny8ctl.fixes.params import Strategy, UserRepairParams
from igny8ctl.journal.tables import primary_key
from igny8ctl.tables import MappedTable


class UserRepair(Fix):
    """Orphaned and dangling users share strategies (``UserRepairParams``)."""

    params: UserRepairParams
    rechecks = ("users.orphaned", "users.dangling-account", "accounts.owner")

    def target_table(self) -> MappedTable:
        return self.schema.user

    def broken(self) -> sa.ColumnElement[bool]:
        raise NotImplementedError

    def target_condition(self) -> sa.ColumnElement[bool]:
        user = self.schema.user
        condition = self.broken()
        if self.params.user_ids:
            condition = sa.and_(condition, user.id.in_(self.params.user_ids))
        if self.params.email_domain:
            condition = sa.and_(condition, sa.func.lower(user.email).endswith(
                f"@{self.params.email_domain}", autoescape=True))
        return condition

    def watched(self) -> list[sa.Column[Any]]:
        user = self.schema.user
        return [user.account_id, user.username, user.email, user.first_name, user.last_name,
                user.role]

    def tables(self) -> set[str]:
        if self.params.strategy is Strategy.CREATE_ACCOUNT:
            return {self.root.name, self.schema.account.table.name}
        return {self.root.name}

    def operations(self, targets: sa.ColumnElement[bool], plan: Plan) -> list[Operation]:
        user = self.schema.user
        if self.params.strategy is Strategy.CREATE_ACCOUNT:
            return self._create_accounts(targets, plan)
        if self.params.strategy is Strategy.ASSIGN:
            values: dict[str, Any] = {user.account_id.name: self._account}
            if self.params.role:
                values[user.role.name] = self.params.role.value
            return [Operation(UPDATE, self.root, f"attach users to {self.params.account}",
                              where=targets, values=values)]
        return cascade_delete(self.schema, self.root, targets)

    def resolve(self, connection: Connection) -> None:
        if self.params.strategy is Strategy.CREATE_ACCOUNT:
            self._constants = self._account_values(connection)
        elif self.params.strategy is Strategy.ASSIGN:
            self._account = self._account_id(connection)

    def prepare(self, connection: Connection) -> list[str]:
        self.resolve(connection)
        if self.params.strategy is Strategy.CREATE_ACCOUNT:
            return self._missing_account_columns()
        if self.params.strategy is Strategy.DELETE and not self.params.cascade:
            refs = referencing_rows(connection, self.schema, self.root, self.target_condition())
            if refs:
                listed = ", ".join(f"{where} ({rows} rows)" for where, rows in refs)
                return [f"users are still referenced by {listed}; pass --cascade to delete "
                        "or clear those rows as Django would"]
        return []

    def _account_id(self, connection: Connection) -> int:
        account = self.schema.account
        found = connection.scalar(sa.select(account.id).where(
            account.slug == self.params.account))
        if found is None:
            raise ConfigError(f"no account with slug {self.params.account!r}", key="--account")
        return int(found)

    def _plan_id(self, connection: Connection) -> int:
        plan = self.schema.plan
        found = connection.scalar(sa.select(plan.id).where(plan.slug == self.params.plan))
        if found is None:
            raise ConfigError(f"plan {self.params.plan!r} does not exist: pass --plan SLUG of "
                              "an existing plan", key="--plan")
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
        own = {account.owner_id.name, account.name.name, account.slug.name,
               account.plan_id.name, account.created_at.name, account.updated_at.name,
               primary_key(account.table).name}
        for column, value in self.params.set:
            if column not in account.table.c:
                raise ConfigError(f"--set {column}: {account.table.name} has no such column",
                                  key="--set")
            if column in own:
                raise ConfigError(f"--set {column}: create-account sets {column} itself",
                                  key="--set")
            values[column] = _typed(connection, account.table.c[column], value)
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

    def _owned(self, owner: sa.ColumnElement[Any] | None = None) -> sa.ScalarSelect[Any]:
        """The account ``owner`` (the user being written, by default) owns already."""
        user, account = self.schema.user, self.schema.account
        found = sa.select(sa.func.min(account.id))
        if owner is None:
            return found.where(account.owner_id == user.id).correlate_except(
                account.table).scalar_subquery()
        return found.where(account.owner_id == owner).scalar_subquery()

    def details(self) -> list[sa.ColumnElement[Any]]:
        """create-account's name and base slug for each target."""
        if self.params.strategy is not Strategy.CREATE_ACCOUNT:
            return []
        user, account = self.schema.user, self.schema.account
        slug_length = getattr(account.slug.type, "length", None) or 50
        name_length = getattr(account.name.type, "length", None) or 150
        full_name = sa.func.trim(user.first_name + " " + user.last_name)
        name = sa.case((full_name != "", full_name), else_=user.username)
        base = sa.func.coalesce(
            sa.func.nullif(self.schema.dialect.slugify_sql(user.username, slug_length), ""),
            sa.func.nullif(self.schema.dialect.slugify_sql(user.email, slug_length), ""),
            "user",
        )
        return [sa.func.substr(name, 1, name_length).label("name"), base.label("base")]

    def lookups(self, targets: sa.Subquery) -> list[sa.ColumnElement[Any]]:
        """The account each target owns already (which it joins instead), and whether its
        base slug is taken."""
        if self.params.strategy is not Strategy.CREATE_ACCOUNT:
            return []
        account = self.schema.account
        return [self._owned(targets.c.id),
                sa.exists().where(account.slug == targets.c.base)]

    def bind(self, connection: Connection, rows: Sequence[Sequence[Any]]
             ) -> tuple[tuple[NewAccount, ...], tuple[tuple[int, int], ...]]:
        """The accounts to create, with slugs free now and unique among themselves, and the
        accounts that orphans owning one will join."""
        if self.params.strategy is not Strategy.CREATE_ACCOUNT:
            return (), ()
        account = self.schema.account
        joins = tuple((int(r[0]), int(r[4])) for r in rows if r[4] is not None)
        wanted = [r for r in rows if r[4] is None]
        exceptions = free_slugs(connection, account.slug,
                                [(r[0], r[3], bool(r[5])) for r in wanted],
                                getattr(account.slug.type, "length", None) or 50)
        slug = exceptions.get
        return tuple([NewAccount(r[0], slug(r[0], r[3]), r[2]) for r in wanted]), joins

    def changes(self, connection: Connection, targets: sa.ColumnElement[bool],
                plan: Plan) -> tuple[Change, ...]:
        """create-account's plan already holds each account and user it writes."""
        if self.params.strategy is not Strategy.CREATE_ACCOUNT:
            return super().changes(connection, targets, plan)
        limit = plan.sample_limit
        owners = tuple(a.owner_id for a in plan.accounts)
        return (Change(INSERT, self.schema.account.table.name, len(owners), owners[:limit],
                       CREATE_DESCRIPTION),
                Change(UPDATE, self.root.name, len(plan.targets), plan.targets[:limit],
                       self._attach_description()))

    def still_planned(self, plan: Plan) -> sa.ColumnElement[bool]:
        """A planned creation still needs the user to own no account and its slug free; a
        planned join needs the user to still own that account. Each is a set the user's id
        must be in, so no statement scans the plan once per row."""
        if self.params.strategy is not Strategy.CREATE_ACCOUNT:
            return sa.true()
        user, account = self.schema.user, self.schema.account
        dialect = self.schema.dialect
        joins = dialect.value_rows(plan.joins, [("id", sa.BigInteger()),
                                                ("account", sa.BigInteger())])
        creates = dialect.value_rows(plan.accounts, [("id", sa.BigInteger()),
                                                     ("slug", sa.Text())])
        return sa.or_(
            user.id.in_(sa.select(joins.c.id).where(joins.c.account == self._owned(joins.c.id))),
            sa.and_(user.id.in_(sa.select(creates.c.id).where(
                ~sa.exists().where(account.slug == creates.c.slug))), self._owned().is_(None)),
        )

    def _create_accounts(self, targets: sa.ColumnElement[bool], plan: Plan) -> list[Operation]:
        user, account = self.schema.user, self.schema.account
        constants = self._constants
        values: dict[str, Any] = {user.account_id.name: self._owned()}
        if self.params.role:
            values[user.role.name] = self.params.role.value
        planned = self.schema.dialect.value_rows(plan.accounts, [
            ("owner", sa.BigInteger()), ("slug", sa.Text()), ("name", sa.Text())])
        source = sa.select(
            planned.c.owner, planned.c.name, planned.c.slug,
            *(sa.literal(value, type_=account.table.c[column].type)
              for column, value in constants.items()),
        )
        return [
            Operation(INSERT, account.table, CREATE_DESCRIPTION,
                      columns=[account.owner_id.name, account.name.name, account.slug.name,
                               *constants],
                      source=source),
            Operation(UPDATE, user.table, self._attach_description(), where=targets,
                      values=values),
        ]

    def _attach_description(self) -> str:
        role = self.params.role.value if self.params.role else None
        return "attach each user to the account they own" + (f", role {role}" if role else "")


CREATE_DESCRIPTION = "create one account per user (sample: owner ids)"


def suffixed(base: str, tag: str, length: int) -> str:
    """``<base>--<tag>`` within ``length``: a slugified base never holds ``--``."""
    return base[:max(1, length - 2 - len(tag))].rstrip("-") + "--" + tag


def free_slugs(connection: Connection, column: sa.Column[Any],
               wanted: Sequence[tuple[int, str, bool]], length: int) -> dict[int, str]:
    """The slug of each user id that cannot have its base: free in ``column`` and unique
    among all, ``<base>--<id>`` when more than one user wants the base, then
    ``<base>--<id>-2``, ... for as long as an existing slug (one shaped like our suffix
    included) is in the way. Every other user gets its base.

    ``wanted`` holds each user's base and whether ``column`` has it already (read in the
    same snapshot), so only suffixed slugs and taken bases are looked up: a base never
    holds ``--``, so a free base wanted once clashes with nothing.
    """
    counts = Counter(base for _, base, _ in wanted)
    bases = {uid: base for uid, base, taken in wanted if taken or counts[base] > 1}
    slugs = {uid: base if counts[base] == 1 else suffixed(base, str(uid), length)
             for uid, base in bases.items()}
    attempt = dict.fromkeys(bases, 1)
    pending = set(bases)
    while pending:
        asked = sorted({slugs[uid] for uid in pending})
        taken: set[str] = set()
        for start in range(0, len(asked), 10_000):
            planned = dialect_of(connection).value_rows(
                [(slug,) for slug in asked[start:start + 10_000]], [("slug", sa.Text())])
            taken.update(connection.scalars(
                sa.select(planned.c.slug).where(sa.exists().where(column == planned.c.slug))))
        used = Counter(slugs.values())
        clashing = {uid for uid in pending if slugs[uid] in taken or used[slugs[uid]] > 1}
        for uid in clashing:
            attempt[uid] += 1
            tag = str(uid) if attempt[uid] == 2 and slugs[uid] == bases[uid] else \
                f"{uid}-{attempt[uid]}"
            slugs[uid] = suffixed(bases[uid], tag, length)
        pending = clashing
    return slugs


def _typed(connection: Connection, column: sa.Column[Any], value: str) -> Any:
    """``value`` as the database would store it in ``column``, or a usage error now, not a
    database error at apply time (the cast runs in a savepoint, so the snapshot survives)."""
    length = getattr(column.type, "length", None)
    if isinstance(column.type, sa.String) and length is not None and len(value) > length:
        raise ConfigError(f"--set {column.name}: {len(value)} characters, the column holds "
                          f"{length}", key="--set")
    try:
        # SQLite casts anything to a number (``'abc'`` → 0): numbers are parsed here first.
        if isinstance(column.type, sa.Integer):
            int(value)
        elif isinstance(column.type, sa.Numeric | sa.Float):
            float(value)
        with connection.begin_nested():
            return connection.scalar(sa.select(sa.cast(sa.literal(value, sa.Text()),
                                                       column.type)))
    except (ValueError, sa_exc.DBAPIError):
        raise ConfigError(f"--set {column.name}: {value[:40]!r} is not a value of "
                          f"{column.table.name}.{column.name} ({column.type})",
                          key="--set") from None
