"""What the database itself enforces on user.account_id, read from the catalog.

Shared by the schema checks and by ``migrate`` so both read the catalog the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from igny8ctl.db import Igny8Schema


@dataclass(frozen=True)
class Constraint:
    name: str
    validated: bool


@dataclass(frozen=True)
class AccountColumnState:
    not_null: bool
    not_null_checks: tuple[Constraint, ...]
    foreign_keys: tuple[Constraint, ...]

    @property
    def validated_check(self) -> Constraint | None:
        return next((c for c in self.not_null_checks if c.validated), None)

    @property
    def valid_foreign_key(self) -> Constraint | None:
        return next((c for c in self.foreign_keys if c.validated), None)


def qualified_name(table: sa.Table) -> str:
    name = '"' + table.name.replace('"', '""') + '"'
    return (f'"{table.schema}".' if table.schema else "") + name


def account_column_state(connection: sa.Connection, schema: Igny8Schema) -> AccountColumnState:
    user, account = schema.user, schema.account
    column = user.account_id.name
    if schema.dialect != "postgresql":
        inspector = sa.inspect(connection)
        not_null = any(
            c["name"] == column and not c["nullable"]
            for c in inspector.get_columns(user.table.name)
        )
        keys = tuple(
            Constraint(fk["name"] or "(unnamed)", True)
            for fk in inspector.get_foreign_keys(user.table.name)
            if fk["constrained_columns"] == [column] and fk["referred_table"] == account.table.name
        )
        return AccountColumnState(not_null, (), keys)

    names = {"user": qualified_name(user.table), "account": qualified_name(account.table),
             "column": column}
    not_null = bool(connection.scalar(
        sa.text("SELECT attnotnull FROM pg_attribute "
                "WHERE attrelid = to_regclass(:user) AND attname = :column"),
        names,
    ))
    checks = connection.execute(
        sa.text(
            "SELECT conname, convalidated FROM pg_constraint "
            "WHERE conrelid = to_regclass(:user) AND contype = 'c' "
            "AND regexp_replace(pg_get_expr(conbin, conrelid), '[()\\s\"]', '', 'g') = :definition "
            "ORDER BY conname"
        ),
        {**names, "definition": column + "ISNOTNULL"},
    ).all()
    foreign_keys = connection.execute(
        sa.text(
            "SELECT c.conname, c.convalidated FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            "WHERE c.contype = 'f' AND c.conrelid = to_regclass(:user) "
            "AND c.confrelid = to_regclass(:account) AND a.attname = :column "
            "AND cardinality(c.conkey) = 1 ORDER BY c.conname"
        ),
        names,
    ).all()
    return AccountColumnState(
        not_null,
        tuple(Constraint(r.conname, bool(r.convalidated)) for r in checks),
        tuple(Constraint(r.conname, bool(r.convalidated)) for r in foreign_keys),
    )
