"""What the database itself enforces on user.account_id, read from the catalog.

Shared by the schema checks and by ``migrate`` so both read the catalog the same way; the
catalog reads themselves differ by database and live in ``igny8ctl.dialects``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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


def account_column_state(connection: sa.Connection, schema: Igny8Schema) -> AccountColumnState:
    user, account = schema.user, schema.account
    return schema.dialect.account_column(connection, user.table, user.account_id.name,
                                         account.table)
