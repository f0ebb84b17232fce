"""Tenants (accounts) as every command names them: by slug, or by id when given digits."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.db import Igny8Schema
from igny8ctl.errors import ConfigError


@dataclass(frozen=True)
class Tenant:
    id: int
    slug: str


def find_tenant(connection: Connection, schema: Igny8Schema, tenant: str) -> Tenant:
    """A tenant by slug, or by id when given digits."""
    account = schema.account
    condition = account.slug == tenant
    if tenant.isdigit() and len(tenant) < 19:
        condition = sa.or_(condition, account.id == int(tenant))
    rows = connection.execute(sa.select(account.id, account.slug).where(condition)).all()
    if not rows:
        raise ConfigError(f"no tenant {tenant!r} (give an account slug or id)")
    if len(rows) > 1:
        raise ConfigError(f"{tenant!r} is both an account id and another account's slug: "
                          "give the slug")
    return Tenant(int(rows[0][0]), str(rows[0][1]))
