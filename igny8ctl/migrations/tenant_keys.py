"""Revision ``tenant-keys``: composite keys that keep every link inside one tenant.

For each link ``tenancy.cross-tenant`` derives from the foreign-key graph, and for the
account's owner, the parent gets ``UNIQUE (id, account_id)`` and the child
``FOREIGN KEY (<fk>, account_id) REFERENCES parent (id, account_id) MATCH SIMPLE DEFERRABLE
INITIALLY DEFERRED``; Django's single-column keys stay.

PostgreSQL: the unique index is built ``CONCURRENTLY`` outside any transaction (an INVALID
index left by an interrupted build is dropped and built again); each key is added
``NOT VALID`` (a catalog change) and ``VALIDATE``d in a transaction of its own, which scans
under SHARE UPDATE EXCLUSIVE while writers keep going. SQLite: the unique indexes, then one
rebuild per child table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sqlalchemy as sa

from igny8ctl.catalog import (
    TenantKeyState,
    TenantLink,
    derived_links,
    tenant_key_states,
    tenant_links,
)
from igny8ctl.checks.accounts_owner import AccountsOwner
from igny8ctl.checks.base import CheckContext
from igny8ctl.checks.tenancy_cross_tenant import TenancyCrossTenant
from igny8ctl.checks.users_orphaned import UsersOrphaned
from igny8ctl.dialects import Dialect, dialect_named
from igny8ctl.errors import Refused
from igny8ctl.migrations.steps import (
    ACCESS_EXCLUSIVE,
    FOREIGN_KEY_VIOLATION,
    ROW_SHARE,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    ForeignKeySpec,
    Offline,
    Rebuild,
    Recipe,
    Step,
    do_block,
    literal,
    own_name,
    raise_exception,
)
from igny8ctl.render.text import listing

if TYPE_CHECKING:
    from igny8ctl.config import Settings
    from igny8ctl.db import Igny8Schema
    from igny8ctl.errors import Igny8Error

#: Suffixes Django never generates (its own end in ``_fk_…``, ``_uniq``, ``_like``, ``_check``,
#: ``_pk``, ``_idx`` or the bare hash), so our names never collide with Django's.
UNIQUE_SUFFIX = "_tenant_uniq"
KEY_SUFFIX = "_tenant_fk"
SAMPLE = 20


def unique_name(link: TenantLink) -> str:
    return own_name(link.parent, list(link.parent_columns), UNIQUE_SUFFIX)


def key_name(link: TenantLink) -> str:
    return own_name(link.child, list(link.columns), KEY_SUFFIX)


def key_spec(link: TenantLink) -> ForeignKeySpec:
    return ForeignKeySpec(key_name(link), link.columns, link.parent, link.parent_columns)


class TenantKeys(Recipe):
    name: ClassVar[str] = "tenant-keys"
    weakens: ClassVar[str] = "rows linking to another tenant's rows become possible again"

    def links(self, schema: Igny8Schema) -> list[TenantLink]:
        return tenant_links(schema)

    def states(self, connection: sa.Connection, schema: Igny8Schema) -> list[TenantKeyState]:
        return tenant_key_states(connection, schema, self.links(schema))

    def plan(self, connection: sa.Connection, schema: Igny8Schema) -> tuple[Step, ...]:
        return plan(self.states(connection, schema), schema.dialect)

    def downgrade_plan(self, connection: sa.Connection,
                       schema: Igny8Schema) -> tuple[Step, ...]:
        """Take away what this revision created, by name, whether or not excluded since."""
        links = tenant_links(schema) + tenant_links(schema, excluded=True)
        return downgrade_plan(tenant_key_states(connection, schema, links), schema.dialect)

    def preflight(self, connection: sa.Connection, schema: Igny8Schema) -> Igny8Error | None:
        defects = preflight(connection, schema, self.links(schema), self.settings)
        if not defects:
            return None
        rows: dict[str, list[int]] = {}
        for defect in defects:
            rows.setdefault(defect.table, []).extend(defect.sample)
        return Refused("refusing to add tenant keys, nothing was changed: "
                       + "; ".join(d.describe() for d in defects)
                       + "; then run igny8ctl migrate apply again", rows=rows)

    def offline(self) -> Offline:
        links, nullable = packaged_links(self.settings)
        return offline_for(links, nullable, owner_label(self.settings))

    def violated(self, step: Step, sqlstate: str | None) -> Igny8Error | None:
        if sqlstate == FOREIGN_KEY_VIOLATION:
            return Refused(
                f"{step.title}: rows linking across tenants were written after the preflight; "
                f"repair them ({TenancyCrossTenant.fix}, {AccountsOwner.fix}) and apply again, "
                "it resumes (the NOT VALID key already stops new ones)")
        return None


def plan(states: list[TenantKeyState], dialect: Dialect) -> tuple[Step, ...]:
    """Parents' unique keys first (a foreign key needs one), then each link's key."""
    quote = dialect.quote
    steps: list[Step] = []
    for state in _by_parent(states):
        if state.unique_key is not None:
            continue
        link, name = state.link, unique_name(state.link)
        columns = ", ".join(quote(c) for c in link.parent_columns)
        create = (f"CREATE UNIQUE INDEX CONCURRENTLY {quote(name)} ON {quote(link.parent)} "
                  f"({columns})")
        if not dialect.alters_constraints:
            steps.append(Step(f"unique:{link.parent}",
                              f"create UNIQUE ({', '.join(link.parent_columns)}) on "
                              f"{link.parent}",
                              (f"CREATE UNIQUE INDEX {quote(name)} ON {quote(link.parent)} "
                               f"({columns})",)))
            continue
        leftover = any(c.name == name and not c.validated for c in state.unique_keys)
        title = (f"build UNIQUE ({', '.join(link.parent_columns)}) on {link.parent} "
                 "concurrently (writers keep running)")
        statements: tuple[str, ...] = (create,)
        if leftover:
            title = "drop the INVALID index of an interrupted build, then " + title
            statements = (f"DROP INDEX CONCURRENTLY IF EXISTS {quote(name)}", create)
        steps.append(Step(f"unique:{link.parent}", title, statements,
                          ((link.parent, SHARE_UPDATE_EXCLUSIVE),), transactional=False))
    if not dialect.alters_constraints:
        missing: dict[str, list[TenantLink]] = {}
        for state in states:
            if not state.foreign_keys:
                missing.setdefault(state.link.child, []).append(state.link)
        for child, links in missing.items():
            steps.append(Step(
                f"rebuild:{child}", f"rebuild {child} with its tenant key(s) "
                f"{', '.join(link.label for link in links)}", (),
                rebuild=Rebuild(child, add_foreign_keys=tuple(key_spec(k) for k in links))))
        return tuple(steps)
    for state in states:
        link, key = state.link, state.foreign_key
        child = quote(link.child)
        name = quote(key.name if key else key_name(link))
        if key is None:
            steps.append(Step(f"key-add:{link.label}",
                              f"add the tenant key of {link.label} NOT VALID",
                              (_add_key_sql(link, dialect),),
                              ((link.child, SHARE_ROW_EXCLUSIVE),
                               (link.parent, SHARE_ROW_EXCLUSIVE))))
        if key is None or not key.validated:
            steps.append(Step(f"key-validate:{link.label}",
                              f"validate the tenant key of {link.label} (writers keep running)",
                              (f"ALTER TABLE {child} VALIDATE CONSTRAINT {name}",),
                              ((link.child, SHARE_UPDATE_EXCLUSIVE), (link.parent, ROW_SHARE))))
    return tuple(steps)


def downgrade_plan(states: list[TenantKeyState], dialect: Dialect) -> tuple[Step, ...]:
    """The keys first (they depend on the unique indexes), then the indexes."""
    quote = dialect.quote
    steps: list[Step] = []
    if dialect.alters_constraints:
        for state in states:
            link, name = state.link, key_name(state.link)
            if any(c.name == name for c in state.foreign_keys):
                steps.append(Step(f"key-drop:{link.label}", f"drop the tenant key of {link.label}",
                                  (f"ALTER TABLE {quote(link.child)} DROP CONSTRAINT "
                                   f"{quote(name)}",),
                                  ((link.child, ACCESS_EXCLUSIVE),
                                   (link.parent, ACCESS_EXCLUSIVE))))
    else:
        keyed: dict[str, list[TenantLink]] = {}
        for state in states:
            if state.foreign_keys:
                keyed.setdefault(state.link.child, []).append(state.link)
        for child, links in keyed.items():
            steps.append(Step(
                f"rebuild:{child}", f"rebuild {child} without its tenant key(s)", (),
                rebuild=Rebuild(child, drop_foreign_keys=tuple(key_spec(k) for k in links))))
    for state in _by_parent(states):
        link, name = state.link, unique_name(state.link)
        if any(c.name == name for c in state.unique_keys):
            concurrently = "CONCURRENTLY " if dialect.alters_constraints else ""
            steps.append(Step(f"unique-drop:{link.parent}",
                              f"drop UNIQUE ({', '.join(link.parent_columns)}) of {link.parent}",
                              (f"DROP INDEX {concurrently}IF EXISTS {quote(name)}",),
                              ((link.parent, SHARE_UPDATE_EXCLUSIVE),),
                              transactional=not dialect.alters_constraints))
    return tuple(steps)


def _by_parent(states: list[TenantKeyState]) -> list[TenantKeyState]:
    """One state per parent table, in order of first appearance."""
    seen: dict[str, TenantKeyState] = {}
    for state in states:
        seen.setdefault(state.link.parent, state)
    return list(seen.values())


def _add_key_sql(link: TenantLink, dialect: Dialect) -> str:
    quote = dialect.quote
    return (f"ALTER TABLE {quote(link.child)} ADD CONSTRAINT {quote(key_name(link))} "
            f"FOREIGN KEY ({', '.join(quote(c) for c in link.columns)}) "
            f"REFERENCES {quote(link.parent)} ({', '.join(quote(c) for c in link.parent_columns)}) "
            "MATCH SIMPLE DEFERRABLE INITIALLY DEFERRED NOT VALID")


# -- preflight ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Defect:
    """Rows that would break a tenant key, and the command that repairs them."""

    table: str
    count: int
    sample: tuple[int, ...]
    what: str
    repair: str

    def describe(self) -> str:
        ids = f" (ids {listing(self.sample, self.count)})" if self.sample else ""
        return f"{self.count} {self.what}{ids} (repair: {self.repair})"


def owner_label(settings: Settings) -> str:
    return f"{settings.table_name('account')}.{settings.column_name('account', 'owner_id')}"


def preflight(connection: sa.Connection, schema: Igny8Schema, links: list[TenantLink],
              settings: Settings) -> list[Defect]:
    """Cross-tenant rows, owners outside their account, NULL tenant columns on the links."""
    context = CheckContext(connection, schema, settings, sample_limit=SAMPLE)
    labels = {link.label for link in links}
    owner = schema.account
    defects: list[Defect] = []
    if labels - {owner_label(settings)}:
        for finding in TenancyCrossTenant().run(context).findings:
            if finding.count and finding.code in labels:
                defects.append(Defect(finding.code.rpartition(".")[0], finding.count,
                                      finding.sample, f"{finding.code} row(s) in another tenant",
                                      TenancyCrossTenant.fix or ""))
    if owner_label(settings) in labels:
        for finding in AccountsOwner().run(context).findings:
            if finding.count and finding.code in ("owner-other-account", "owner-row-missing"):
                defects.append(Defect(owner.table.name, finding.count, finding.sample,
                                      f"account(s) with {finding.message}",
                                      AccountsOwner.fix or ""))
    tables = schema.metadata.tables
    for name, tenant in dict.fromkeys((link.child, link.columns[1]) for link in links):
        table = tables[name]
        column = table.c[tenant]
        if not column.nullable:
            continue
        pk = next(iter(table.primary_key.columns), column)
        count, sample = context.count_and_sample(sa.select(pk).where(column.is_(None)))
        if count:
            repair = (UsersOrphaned.fix or "") if name == schema.user.table.name else (
                "no igny8ctl fix sets it: give those rows their tenant, or delete them")
            defects.append(Defect(name, count, sample, f"{name} row(s) with "
                                  f"{column.name} NULL (a NULL tenant would skip the key)",
                                  repair))
    return defects


# -- the script --------------------------------------------------------------------------


def packaged_links(settings: Settings) -> tuple[list[TenantLink], dict[str, bool]]:
    """The links of igny8's schema as Django ships it, named through the mapping, and whether
    each child's tenant column allows NULL: the script is written without connecting.

    The packaged DDL is loaded into an in-memory SQLite database and its foreign-key graph
    read by the same ``derived_links`` as online; a tenant table added since is covered by
    ``apply``, which reads the live schema.
    """
    from importlib import resources

    from igny8ctl.config import Settings as Defaults
    from igny8ctl.db import reflect
    from igny8ctl.tables import TABLES

    ddl = resources.files("igny8ctl.schema").joinpath("sqlite.sql").read_text()
    engine = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool)
    with engine.connect() as connection:
        connection.connection.driver_connection.executescript(ddl)  # type: ignore[union-attr]
        schema = reflect(connection, Defaults())
        links = derived_links(schema)
        nullable = {link.child: bool(schema.metadata.tables[link.child].c[link.columns[1]]
                                     .nullable) for link in links}
    engine.dispose()
    logical = {kind.default_name: name for name, kind in TABLES.items()}

    def table(name: str) -> str:
        return settings.table_name(logical[name]) if name in logical else name

    def column(table_name: str, name: str) -> str:
        kind = logical.get(table_name)
        if kind is None or name not in TABLES[kind].logical_columns():
            return name
        return settings.column_name(kind, name)

    mapped = [TenantLink(table(link.child),
                         (column(link.child, link.columns[0]), column(link.child, link.columns[1])),
                         table(link.parent),
                         (column(link.parent, link.parent_columns[0]),
                          column(link.parent, link.parent_columns[1])))
              for link in links]
    chosen = set(settings.tenant_keys_exclude)
    keep = [(new, nullable[old.child]) for new, old in zip(mapped, links, strict=True)
            if new.label not in chosen]
    return [link for link, _ in keep], {link.child: null for link, null in keep}


def offline_for(links: list[TenantLink], tenant_nullable: dict[str, bool],
                owner: str) -> Offline:
    """The revision as a script (PostgreSQL): a refusing preflight, then the same steps."""
    dialect = dialect_named("postgresql")
    quote = dialect.quote
    checks = []
    for link in links:
        child, parent = quote(link.child), quote(link.parent)
        fk, tenant = (quote(c) for c in link.columns)
        pid, ptenant = (quote(c) for c in link.parent_columns)
        repair = AccountsOwner.fix if link.label == owner else TenancyCrossTenant.fix
        message = raise_exception(f"rows of {link.label} link to another tenant's rows; "
                                  f"repair them: {repair}")
        checks.append(
            f"    IF EXISTS (SELECT 1 FROM {child} c JOIN {parent} p ON p.{pid} = c.{fk} "
            f"WHERE c.{tenant} IS DISTINCT FROM p.{ptenant}) THEN\n"
            f"        {message};\n    END IF;")
        if tenant_nullable.get(link.child):
            null = raise_exception(f"rows of {link.child} have no tenant "
                                   f"({link.columns[1]} NULL)")
            checks.append(f"    IF EXISTS (SELECT 1 FROM {child} WHERE {tenant} IS NULL) THEN\n"
                          f"        {null};\n    END IF;")
    preflight_sql = do_block("BEGIN\n" + "\n".join(dict.fromkeys(checks)) + "\nEND")
    steps: list[Step] = []
    for link in dict((link.parent, link) for link in reversed(links)).values():
        name = quote(unique_name(link))
        columns = ", ".join(quote(c) for c in link.parent_columns)
        steps.append(Step(
            f"unique:{link.parent}", f"build UNIQUE ({', '.join(link.parent_columns)}) on "
            f"{link.parent} concurrently; first drop an INVALID index an interrupted build left",
            (do_block(f"BEGIN\n    IF EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = "
                      f"to_regclass({literal(name)}) AND NOT indisvalid) THEN\n"
                      f"        DROP INDEX {name};\n    END IF;\nEND"),
             f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {quote(link.parent)} "
             f"({columns})"),
            ((link.parent, SHARE_UPDATE_EXCLUSIVE),), transactional=False))
    for link in links:
        keys = _keys_sql(link)
        steps.append(Step(
            f"key-add:{link.label}", f"add the tenant key of {link.label} NOT VALID",
            (do_block(f"BEGIN\n    IF NOT EXISTS ({keys}) THEN\n"
                      f"        {_add_key_sql(link, dialect)};\n    END IF;\nEND"),),
            ((link.child, SHARE_ROW_EXCLUSIVE), (link.parent, SHARE_ROW_EXCLUSIVE))))
        validate = literal(f"ALTER TABLE {quote(link.child)} VALIDATE CONSTRAINT ")
        steps.append(Step(
            f"key-validate:{link.label}",
            f"validate the tenant key of {link.label} (writers keep running)",
            (do_block(f"DECLARE\n    name text;\nBEGIN\n"
                      f"    FOR name IN {keys} AND NOT c.convalidated LOOP\n"
                      f"        EXECUTE {validate} || quote_ident(name);\n    END LOOP;\nEND"),),
            ((link.child, SHARE_UPDATE_EXCLUSIVE), (link.parent, ROW_SHARE))))
    return Offline((preflight_sql,), tuple(steps))


def _keys_sql(link: TenantLink) -> str:
    """The composite keys of a link, from the catalog, by columns (any name)."""
    quote = dialect_named("postgresql").quote

    def attnames(key: str, relation: str) -> str:
        return (f"ARRAY(SELECT a.attname::text FROM unnest(c.{key}) WITH ORDINALITY k(n, i) "
                f"JOIN pg_attribute a ON a.attrelid = c.{relation} AND a.attnum = k.n "
                "ORDER BY k.i)")

    def array(names: tuple[str, ...]) -> str:
        return "ARRAY[" + ", ".join(literal(n) for n in names) + "]::text[]"

    return (f"SELECT c.conname FROM pg_constraint c WHERE c.contype = 'f' "
            f"AND c.conrelid = to_regclass({literal(quote(link.child))}) "
            f"AND c.confrelid = to_regclass({literal(quote(link.parent))}) "
            f"AND {attnames('conkey', 'conrelid')} = {array(link.columns)} "
            f"AND {attnames('confkey', 'confrelid')} = {array(link.parent_columns)}")
