"""Revision ``account-not-null``: ``user.account_id`` NOT NULL with a valid foreign key.

PostgreSQL: add ``CHECK (col IS NOT NULL) NOT VALID`` (a catalog change); ``VALIDATE`` it in
its own transaction (SHARE UPDATE EXCLUSIVE: writers keep going); then ``SET NOT NULL``, which
PostgreSQL 12+ proves from the validated check instead of scanning, and ``DROP CONSTRAINT`` of
the check, as two statements of one transaction (one ALTER TABLE with both actions would scan
under ACCESS EXCLUSIVE). A missing foreign key is added ``NOT VALID`` and validated the same
way. SQLite: one rebuild of the user table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from igny8ctl.catalog import AccountColumnState, account_column_state
from igny8ctl.checks.base import CheckContext
from igny8ctl.checks.users_dangling_account import UsersDanglingAccount
from igny8ctl.checks.users_orphaned import UsersOrphaned
from igny8ctl.dialects import Dialect, dialect_named
from igny8ctl.errors import Refused
from igny8ctl.migrations.steps import (
    ACCESS_EXCLUSIVE,
    CHECK_VIOLATION,
    FOREIGN_KEY_VIOLATION,
    ROW_SHARE,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    ForeignKeySpec,
    Offline,
    Rebuild,
    Recipe,
    Step,
    django_name,
    do_block,
    literal,
    raise_exception,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

    from igny8ctl.config import Settings
    from igny8ctl.db import Igny8Schema
    from igny8ctl.errors import Igny8Error


@dataclass(frozen=True)
class Target:
    """The tables and columns the revision acts on, resolved through the Settings mapping."""

    user_table: str
    column: str
    account_table: str
    account_pk: str

    @classmethod
    def of(cls, settings: Settings) -> Target:
        return cls(settings.table_name("user"), settings.column_name("user", "account_id"),
                   settings.table_name("account"), settings.column_name("account", "id"))

    @property
    def fk_name(self) -> str:
        """Django's name for this key (``<table>_<col>_<hash>_fk_<target>``, truncated)."""
        return django_name(self.user_table, [self.column],
                           f"_fk_{self.account_table}_{self.account_pk}")

    @property
    def check_name(self) -> str:
        return django_name(self.user_table, [self.column], "_notnull")

    @property
    def foreign_key(self) -> ForeignKeySpec:
        return ForeignKeySpec(self.fk_name, (self.column,), self.account_table,
                              (self.account_pk,))


class AccountNotNull(Recipe):
    name: ClassVar[str] = "account-not-null"
    weakens: ClassVar[str] = "users without an account become possible again"

    @property
    def target(self) -> Target:
        return Target.of(self.settings)

    def plan(self, connection: sa.Connection, schema: Igny8Schema) -> tuple[Step, ...]:
        return plan(account_column_state(connection, schema), self.target, schema.dialect)

    def downgrade_plan(self, connection: sa.Connection,
                       schema: Igny8Schema) -> tuple[Step, ...]:
        state = account_column_state(connection, schema)
        target = self.target
        if not state.not_null:
            return ()
        if not schema.dialect.alters_constraints:
            return (Step("rebuild", f"rebuild {target.user_table} with {target.column} "
                                    "nullable", (),
                         rebuild=Rebuild(target.user_table, nullable=((target.column, True),))),)
        quote = schema.dialect.quote
        return (Step(
            "drop-not-null", f"DROP NOT NULL on {target.column}",
            (f"ALTER TABLE {quote(target.user_table)} ALTER COLUMN {quote(target.column)} "
             "DROP NOT NULL",),
            ((target.user_table, ACCESS_EXCLUSIVE),)),)

    def preflight(self, connection: sa.Connection, schema: Igny8Schema) -> Igny8Error | None:
        message = refusal(*defect_counts(connection, schema, self.settings))
        return Refused(message) if message else None

    def offline(self) -> Offline:
        return offline(self.target)

    def violated(self, step: Step, sqlstate: str | None) -> Igny8Error | None:
        if sqlstate == CHECK_VIOLATION:
            return Refused(f"{step.title}: users without an account were written after the "
                           f"preflight; repair them ({UsersOrphaned.fix}) and apply again, it "
                           "resumes (the NOT VALID check already stops new ones)")
        if sqlstate == FOREIGN_KEY_VIOLATION:
            return Refused(f"{step.title}: users pointing at a missing account were written "
                           f"after the preflight; repair them ({UsersDanglingAccount.fix}) and "
                           "apply again, it resumes")
        return None


def plan(state: AccountColumnState, target: Target, dialect: Dialect) -> tuple[Step, ...]:
    """The steps still needed to enforce the column, given what the catalog shows done."""
    if not dialect.alters_constraints:
        if state.not_null and state.foreign_keys:
            return ()
        title = f"rebuild {target.user_table} with {target.column} NOT NULL"
        if not state.foreign_keys:
            title += " and its foreign key"
        return (Step("rebuild", title + "", (), rebuild=Rebuild(
            target.user_table, nullable=((target.column, False),),
            add_foreign_keys=() if state.foreign_keys else (target.foreign_key,))),)
    quote = dialect.quote
    user, column = quote(target.user_table), quote(target.column)
    steps: list[Step] = []
    if not state.not_null:
        check = state.validated_check or next(iter(state.not_null_checks), None)
        name = quote(check.name if check else target.check_name)
        if check is None:
            steps.append(Step(
                "check-add", f"add CHECK ({target.column} IS NOT NULL) NOT VALID",
                (f"ALTER TABLE {user} ADD CONSTRAINT {name} CHECK ({column} IS NOT NULL) "
                 "NOT VALID",),
                ((target.user_table, ACCESS_EXCLUSIVE),)))
        if check is None or not check.validated:
            steps.append(Step(
                "check-validate", "validate the check (writers keep running)",
                (f"ALTER TABLE {user} VALIDATE CONSTRAINT {name}",),
                ((target.user_table, SHARE_UPDATE_EXCLUSIVE),)))
        steps.append(Step(
            "set-not-null", f"SET NOT NULL on {target.column}, then drop the check",
            (f"ALTER TABLE {user} ALTER COLUMN {column} SET NOT NULL",
             f"ALTER TABLE {user} DROP CONSTRAINT {name}"),
            ((target.user_table, ACCESS_EXCLUSIVE),)))
    elif any(c.name == target.check_name for c in state.not_null_checks):
        steps.append(Step(
            "check-drop", "drop the check, redundant with NOT NULL",
            (f"ALTER TABLE {user} DROP CONSTRAINT {quote(target.check_name)}",),
            ((target.user_table, ACCESS_EXCLUSIVE),)))
    key = state.valid_foreign_key or next(iter(state.foreign_keys), None)
    if key is None:
        steps.append(_fk_add(target, _fk_add_sql(target, dialect)))
    if key is None or not key.validated:
        steps.append(Step(
            "fk-validate", "validate the foreign key (writers keep running)",
            (f"ALTER TABLE {user} VALIDATE CONSTRAINT "
             f"{quote(key.name if key else target.fk_name)}",),
            ((target.user_table, SHARE_UPDATE_EXCLUSIVE), (target.account_table, ROW_SHARE))))
    return tuple(steps)


def _fk_add(target: Target, statement: str) -> Step:
    return Step(
        "fk-add", "add the foreign key NOT VALID", (statement,),
        ((target.user_table, SHARE_ROW_EXCLUSIVE), (target.account_table, SHARE_ROW_EXCLUSIVE)))


def _fk_add_sql(target: Target, dialect: Dialect) -> str:
    quote = dialect.quote
    return (f"ALTER TABLE {quote(target.user_table)} ADD CONSTRAINT {quote(target.fk_name)} "
            f"FOREIGN KEY ({quote(target.column)}) REFERENCES {quote(target.account_table)} "
            f"({quote(target.account_pk)}) DEFERRABLE INITIALLY DEFERRED NOT VALID")


def offline(target: Target) -> Offline:
    """The whole recipe as a script (PostgreSQL): guards in SQL stand in for catalog reads."""
    dialect = dialect_named("postgresql")
    quote = dialect.quote
    user, column = quote(target.user_table), quote(target.column)
    account, pk = quote(target.account_table), quote(target.account_pk)
    keys = (f"SELECT c.conname FROM pg_constraint c\n"
            f"        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]\n"
            f"        WHERE c.contype = 'f' AND cardinality(c.conkey) = 1"
            f" AND c.conrelid = to_regclass({literal(user)})\n"
            f"          AND c.confrelid = to_regclass({literal(account)})"
            f" AND a.attname = {literal(target.column)}")
    orphans = raise_exception("users without an account exist; repair them: "
                              + UsersOrphaned.fix)
    dangling = raise_exception("users point at missing accounts; repair them: "
                               + UsersDanglingAccount.fix)
    preflight = do_block(
        "BEGIN\n"
        f"    IF EXISTS (SELECT 1 FROM {user} WHERE {column} IS NULL) THEN\n"
        f"        {orphans};\n"
        "    END IF;\n"
        f"    IF EXISTS (SELECT 1 FROM {user} u WHERE u.{column} IS NOT NULL AND NOT EXISTS "
        f"(SELECT 1 FROM {account} a WHERE a.{pk} = u.{column})) THEN\n"
        f"        {dangling};\n"
        "    END IF;\nEND")
    fk_add = _fk_add(target, do_block(
        f"BEGIN\n    IF NOT EXISTS (\n        {keys}\n    ) THEN\n"
        f"        {_fk_add_sql(target, dialect)};\n    END IF;\nEND"))
    validate = literal(f"ALTER TABLE {user} VALIDATE CONSTRAINT ")
    fk_validate = Step("fk-validate", "validate the foreign key (writers keep running)", (
        do_block(f"DECLARE\n    name text;\nBEGIN\n"
                 f"    FOR name IN {keys} AND NOT c.convalidated LOOP\n"
                 f"        EXECUTE {validate} || quote_ident(name);\n    END LOOP;\nEND"),),
        ((target.user_table, SHARE_UPDATE_EXCLUSIVE), (target.account_table, ROW_SHARE)))
    nullable = AccountColumnState(not_null=False, not_null_checks=(), foreign_keys=())
    checks = [step for step in plan(nullable, target, dialect)
              if step.key.startswith(("check-", "set-"))]
    return Offline((preflight,), (*checks, fk_add, fk_validate))


def defect_counts(connection: sa.Connection, schema: Igny8Schema,
                  settings: Settings) -> tuple[int, int]:
    """Orphaned and dangling users: either blocks the migration."""
    context = CheckContext(connection, schema, settings, sample_limit=0)
    orphaned = sum(f.count for f in UsersOrphaned().run(context).findings)
    dangling = sum(f.count for f in UsersDanglingAccount().run(context).findings)
    return orphaned, dangling


def refusal(orphaned: int, dangling: int) -> str | None:
    parts = []
    if orphaned:
        parts.append(f"{orphaned} user(s) without an account (repair: {UsersOrphaned.fix})")
    if dangling:
        parts.append(f"{dangling} user(s) pointing at a missing account "
                     f"(repair: {UsersDanglingAccount.fix})")
    if not parts:
        return None
    return ("refusing to migrate, nothing was changed: " + " and ".join(parts)
            + "; then run igny8ctl migrate apply again")
