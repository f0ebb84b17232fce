"""Writing a proposal: one journaled transaction per site, under the tenant's job lock.

A proposal may come from a plan file, which is untrusted: before anything is written,
every site, keyword and cluster id in it must belong to the proposal's tenant (keywords
and clusters to that very site), or the run is a usage error. Then each site's keywords
must be unchanged since they were read (their fingerprint), or it refuses.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from igny8ctl.checks.clusters_counts import recounted
from igny8ctl.cluster.naming import SAMPLE
from igny8ctl.cluster.selection import CHUNK, chunks, current_fingerprint
from igny8ctl.cluster.types import ClusterApplied, ClusterProposal, SiteApplied, SiteProposal
from igny8ctl.config import Settings
from igny8ctl.db import Igny8Schema, connect, create_engine, job_lock, read_only, reflect
from igny8ctl.dialects import dialect_of
from igny8ctl.errors import ConfigError, Refused
from igny8ctl.journal.runs import RunInfo
from igny8ctl.journal.writer import Journal
from igny8ctl.render.text import listing
from igny8ctl.tenants import Tenant


def apply(settings: Settings, proposal: ClusterProposal, wait_seconds: float = 0.0,
          plan: str | None = None) -> ClusterApplied:
    """Write ``proposal``: one journaled transaction per site, under the tenant's job lock.

    A usage error (nothing written) if any id is not the tenant's; refuses (``Refused``,
    nothing written) if any site's keywords changed since the proposal: all sites are
    checked before the first is written, and each again under row locks in its own
    transaction. ``igny8ctl fix undo RUN_ID`` reverts the run.
    """
    started = time.perf_counter()
    tenant = proposal.tenant
    sites = [site for site in proposal.sites if site.clusters]
    if not sites:
        raise Refused("nothing to write: the proposal assigns no keyword to a cluster")
    database = create_engine(settings)
    run = RunInfo.new("cluster", {
        "tenant": tenant.slug, "account_id": tenant.id, "engine": proposal.engine,
        "model": proposal.model, "settings": proposal.settings_source, "plan": plan,
        "sites": [s.site_id for s in sites],
        "keywords": sum(s.assigned for s in sites),
    })
    applied: list[SiteApplied] = []
    with job_lock(database, f"cluster:{tenant.id}", wait_seconds), \
            connect(database) as connection:
        with connection.begin():
            schema = reflect(connection, settings)
            _check_tenant(connection, schema, tenant, proposal.database)
            for site in proposal.sites:
                check_ownership(connection, schema, tenant, site)
            for site in sites if len(sites) > 1 else ():
                _verify(connection, schema, tenant, site, applied, run.run_id)
        step = 1
        for number, site in enumerate(sites, 1):
            with connection.begin():
                dialect_of(connection).set_timeouts(
                    connection, settings.statement_timeout_ms, settings.lock_timeout_ms)
                _verify(connection, schema, tenant, site, applied, run.run_id, lock=True)
                journal = Journal(connection, run, first_step=step)
                applied.append(_write_site(connection, schema, journal, tenant, site))
                journal.record_run("applied" if number == len(sites) else "partial")
                step = journal.step + 1
    return ClusterApplied(run.run_id, tuple(applied), time.perf_counter() - started)


def check_plan(settings: Settings, proposal: ClusterProposal) -> ClusterProposal:
    """What ``apply`` checks before writing, read-only: for a plan, before it is shown.

    Returns the plan as it stands in the database: each cluster's volume, sample and
    existing cluster are computed again from its keyword ids, so a preview never shows a
    file's own figures (the writes recompute them too).
    """
    database = create_engine(settings)
    with read_only(database, settings) as connection:
        schema = reflect(connection, settings)
        _check_tenant(connection, schema, proposal.tenant, proposal.database)
        for site in proposal.sites:
            check_ownership(connection, schema, proposal.tenant, site)
        for site in proposal.sites:
            _verify(connection, schema, proposal.tenant, site, (), "")
        return replace(proposal, sites=tuple(
            _as_stored(connection, schema, proposal.tenant, site) for site in proposal.sites))


def _as_stored(connection: Connection, schema: Igny8Schema, tenant: Tenant,
               site: SiteProposal) -> SiteProposal:
    """``site`` with each cluster's volume, top keywords and existing id read from the
    database, in one pass over its keywords."""
    keyword = schema.keyword
    members = dialect_of(connection).value_rows(
        [(k, number) for number, c in enumerate(site.clusters) for k in c.keyword_ids],
        [("id", sa.BigInteger()), ("cluster", sa.Integer())])
    mine = sa.and_(keyword.id == members.c.id, keyword.account_id == tenant.id,
                   keyword.site_id == site.site_id)
    volumes = {int(number): int(volume or 0) for number, volume in connection.execute(
        sa.select(members.c.cluster, sa.func.sum(keyword.volume)).where(mine)
        .group_by(members.c.cluster))}
    rank = sa.func.row_number().over(partition_by=members.c.cluster, order_by=(
        keyword.volume.desc(), keyword.keyword, keyword.id))
    ranked = sa.select(members.c.cluster, keyword.keyword.label("text"),
                       rank.label("rank")).where(mine).subquery()
    samples: dict[int, list[str]] = {}
    for number, text in connection.execute(
            sa.select(ranked.c.cluster, ranked.c.text).where(ranked.c.rank <= SAMPLE)
            .order_by(ranked.c.cluster, ranked.c.rank)):
        samples.setdefault(int(number), []).append(str(text))
    existing = _cluster_ids(connection, schema, tenant, site.site_id,
                            [c.name for c in site.clusters])
    return replace(site, clusters=tuple(
        replace(c, volume=volumes.get(number, 0), sample=tuple(samples.get(number, ())),
                existing_id=existing.get(c.name))
        for number, c in enumerate(site.clusters)))


def check_ownership(connection: Connection, schema: Igny8Schema, tenant: Tenant,
                    site: SiteProposal) -> None:
    """The site is the tenant's, and so is every keyword and existing cluster named for it,
    on that site; else a usage error naming the first ids that are not. An id that no
    longer exists is left to the fingerprint: deleted since, a refusal."""
    site_table, keyword, cluster = schema.site, schema.keyword, schema.cluster
    owned = connection.scalar(sa.select(site_table.id).where(
        site_table.id == site.site_id, site_table.account_id == tenant.id))
    if owned is None:
        raise ConfigError(f"site {site.site_id} is not a site of tenant {tenant.slug}; "
                          "nothing was written", key="site_id")
    foreign = _elsewhere(connection, keyword.id, site.keyword_ids(), sa.and_(
        keyword.account_id == tenant.id, keyword.site_id == site.site_id))
    if foreign:
        raise ConfigError(f"keyword id(s) {listing(foreign)} are not keywords of site "
                          f"{site.site_id} of tenant {tenant.slug}; nothing was written",
                          key="keyword_ids")
    foreign = _elsewhere(connection, cluster.id, sorted(
        {c.existing_id for c in site.clusters if c.existing_id is not None}), sa.and_(
        cluster.account_id == tenant.id, cluster.site_id == site.site_id))
    if foreign:
        raise ConfigError(f"cluster id(s) {listing(foreign)} are not clusters of site "
                          f"{site.site_id} of tenant {tenant.slug}; nothing was written",
                          key="existing_id")


def _elsewhere(connection: Connection, id_column: sa.ColumnElement[int], ids: Iterable[int],
               here: sa.ColumnElement[bool]) -> list[int]:
    """Those of ``ids`` that exist but not ``here`` (another account's, another site's)."""
    elsewhere: list[int] = []
    for chunk in chunks(ids):
        found = set(connection.scalars(sa.select(id_column).where(id_column.in_(chunk), here)))
        missing = [i for i in chunk if i not in found]
        if missing:
            elsewhere += sorted(connection.scalars(
                sa.select(id_column).where(id_column.in_(missing))))
    return elsewhere


def _check_tenant(connection: Connection, schema: Igny8Schema, tenant: Tenant,
                  database: str) -> None:
    account = schema.account
    found = connection.scalar(sa.select(account.id).where(
        account.id == tenant.id, account.slug == tenant.slug))
    if found is None:
        raise Refused(f"tenant {tenant.slug} (id {tenant.id}) is not in this database; "
                      f"the proposal was made against {database}")


def _verify(connection: Connection, schema: Igny8Schema, tenant: Tenant, site: SiteProposal,
            applied: Sequence[SiteApplied], run_id: str, lock: bool = False) -> None:
    if current_fingerprint(connection, schema, tenant, site.keyword_ids(), lock) \
            == site.fingerprint:
        return
    written = (f"; sites {', '.join(str(s.site_id) for s in applied)} were already written "
               f"by run {run_id}" if applied else "; nothing was written")
    raise Refused(f"the keywords of site {site.site_id} changed since the proposal was made "
                  f"(text, site, cluster or status, or rows deleted){written}; run "
                  f"igny8ctl cluster run again")


def _write_site(connection: Connection, schema: Igny8Schema, journal: Journal, tenant: Tenant,
                site: SiteProposal) -> SiteApplied:
    cluster, keyword = schema.cluster, schema.keyword
    now = datetime.now(UTC)
    names = [c.name for c in site.clusters]
    existing = _cluster_ids(connection, schema, tenant, site.site_id, names)
    new_rows = [{
        cluster.name.name: c.name, cluster.description.name: c.description,
        cluster.keywords_count.name: 0, cluster.volume.name: 0,
        cluster.status.name: "active", cluster.created_at.name: now,
        cluster.updated_at.name: now, cluster.account_id.name: tenant.id,
        cluster.site_id.name: site.site_id,
    } for c in site.clusters if c.name not in existing]
    if new_rows:
        try:
            journal.insert_values(cluster.table, new_rows)
        except sa_exc.IntegrityError:
            raise Refused(
                f"a cluster name proposed for site {site.site_id} is taken by a cluster of "
                "another account on that site; run igny8ctl check (tenancy.cross-tenant); "
                "nothing was written for this site") from None
    ids = _cluster_ids(connection, schema, tenant, site.site_id, names)

    assignment = sa.Table(
        "igny8ctl_cluster_assignment", sa.MetaData(),
        sa.Column("keyword_id", sa.BigInteger, primary_key=True),
        sa.Column("cluster_id", sa.BigInteger, nullable=False),
        prefixes=["TEMPORARY"],
    )
    assignment.create(connection)
    for c in site.clusters:
        for chunk in chunks(c.keyword_ids):
            connection.execute(assignment.insert(), [
                {"keyword_id": keyword_id, "cluster_id": ids[c.name]} for keyword_id in chunk])
    planned = sa.select(assignment.c.keyword_id)
    mine = sa.and_(keyword.account_id == tenant.id, keyword.site_id == site.site_id,
                   keyword.id.in_(planned))
    previous = set(connection.scalars(sa.select(keyword.cluster_id).distinct().where(
        mine, keyword.cluster_id.is_not(None))))
    assigned = journal.update(keyword.table, {
        keyword.cluster_id.name: sa.select(assignment.c.cluster_id)
        .where(assignment.c.keyword_id == keyword.id).scalar_subquery(),
        keyword.status.name: "clustered",
        keyword.updated_at.name: now,
    }, mine)
    assignment.drop(connection)

    journal.update(cluster.table, {
        **recounted(schema, same_tenant=True),
        cluster.updated_at.name: now,
    }, sa.and_(cluster.account_id == tenant.id,
               cluster.id.in_(sorted(set(ids.values()) | {int(i) for i in previous}))))
    return SiteApplied(site.site_id, len(new_rows), len(existing), assigned)


def _cluster_ids(connection: Connection, schema: Igny8Schema, tenant: Tenant, site_id: int,
                 names: Sequence[str]) -> dict[str, int]:
    cluster = schema.cluster
    found: dict[str, int] = {}
    for start in range(0, len(names), CHUNK):
        found.update((str(name), int(cluster_id)) for cluster_id, name in connection.execute(
            sa.select(cluster.id, cluster.name).where(
                cluster.account_id == tenant.id, cluster.site_id == site_id,
                cluster.name.in_(names[start:start + CHUNK]))))
    return found
