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


@dataclass(frozen=True)
class TenantLink:
    """A reference that must stay inside one tenant, and the composite key that enforces it:
    ``child (columns) REFERENCES parent (parent_columns)``, the tenant column second."""

    child: str
    columns: tuple[str, str]
    parent: str
    parent_columns: tuple[str, str]

    @property
    def label(self) -> str:
        """``table.column``: how ``tenant_keys_exclude`` and the check name the link."""
        return f"{self.child}.{self.columns[0]}"


@dataclass(frozen=True)
class TenantKeyState:
    """What the catalog shows for one link: the parent's unique keys on (id, tenant), valid
    or INVALID leftovers of an interrupted build, and the child's composite foreign keys."""

    link: TenantLink
    unique_keys: tuple[Constraint, ...]
    foreign_keys: tuple[Constraint, ...]

    @property
    def unique_key(self) -> Constraint | None:
        return next((c for c in self.unique_keys if c.validated), None)

    @property
    def foreign_key(self) -> Constraint | None:
        return next((c for c in self.foreign_keys if c.validated), None) or next(
            iter(self.foreign_keys), None)

    @property
    def enforced(self) -> bool:
        key = self.foreign_key
        return self.unique_key is not None and key is not None and key.validated


def derived_links(schema: Igny8Schema) -> list[TenantLink]:
    """Every link ``tenancy.cross-tenant`` derives from the foreign-key graph, then the
    account's owner (``account (owner_id, id) -> user (id, account_id)``)."""
    from igny8ctl.checks.tenancy_cross_tenant import cross_tenant_links

    tenant = schema.tenant_column
    account, user = schema.account, schema.user
    links = [TenantLink(fk.parent.table.name, (fk.parent.name, tenant),
                        fk.column.table.name, (fk.column.name, tenant))
             for fk in cross_tenant_links(schema)]
    links.append(TenantLink(account.table.name, (account.owner_id.name, account.id.name),
                            user.table.name, (user.id.name, user.account_id.name)))
    return links


def tenant_links(schema: Igny8Schema, excluded: bool = False) -> list[TenantLink]:
    """The links to key: ``derived_links`` less ``[migrate] tenant_keys_exclude`` (or, with
    ``excluded``, only those left out). An entry that names no link is a configuration
    error, not a silent no-op."""
    from igny8ctl.errors import ConfigError

    links = derived_links(schema)
    labels = {link.label for link in links}
    unknown = [name for name in schema.mapping.tenant_keys_exclude if name not in labels]
    if unknown:
        from igny8ctl.render.text import listing, printable

        raise ConfigError(
            f"migrate.tenant_keys_exclude names no link: {printable(unknown[0])} (links: "
            f"{printable(listing(sorted(labels)))})", key="migrate.tenant_keys_exclude")
    chosen = set(schema.mapping.tenant_keys_exclude)
    return [link for link in links if (link.label in chosen) == excluded]


def tenant_key_states(connection: sa.Connection, schema: Igny8Schema,
                      links: list[TenantLink]) -> list[TenantKeyState]:
    tables = schema.metadata.tables
    unique: dict[str, tuple[Constraint, ...]] = {}
    states = []
    for link in links:
        parent = tables[link.parent]
        if link.parent not in unique:
            unique[link.parent] = schema.dialect.unique_keys(connection, parent,
                                                             link.parent_columns)
        states.append(TenantKeyState(link, unique[link.parent],
                                     schema.dialect.composite_foreign_keys(
                                         connection, tables[link.child], link.columns, parent,
                                         link.parent_columns)))
    return states
