"""The cluster job: choose a tenant's keywords, ask an engine, shape its answer into a
proposal, and write a proposal in one journaled transaction per site.

Every query is filtered by the tenant's account id; the only other account ever read is
the system account's openai settings, the app's sanctioned fallback. The model is asked
outside any database transaction, and a proposal is written only if its keywords are
unchanged (same ids, text, site, cluster and status: a fingerprint), so a slow model, a
saved plan, or the web app working meanwhile can never make it write stale decisions.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from igny8ctl.checks.clusters_counts import recounted
from igny8ctl.cluster.base import (
    MIN_KEYWORDS,
    Engine,
    Grouping,
    Keyword,
    NoProgress,
    Progress,
    SiteKeywords,
    Usage,
    name_key,
)
from igny8ctl.cluster.settings import (
    OpenAISettings,
    Overrides,
    Tenant,
    openai_settings,
    resolve_settings_row,
)
from igny8ctl.config import Settings
from igny8ctl.db import (
    Igny8Schema,
    connect,
    create_engine,
    display_url,
    job_lock,
    read_only,
    reflect,
)
from igny8ctl.dialects import dialect_of
from igny8ctl.errors import ConfigError, Refused
from igny8ctl.journal.runs import RunInfo
from igny8ctl.journal.writer import Journal

ENGINES = ("openai", "local")
SAMPLE = 3
CHUNK = 500


@dataclass(frozen=True)
class ClusterRequest:
    """What to cluster and how; ``overrides`` carries the OpenAI flags."""

    tenant: str
    site_id: int | None = None
    keyword_ids: tuple[int, ...] = ()
    all_keywords: bool = False
    engine: str = "openai"
    overrides: Overrides = field(default_factory=Overrides)
    batch_size: int | None = None
    concurrency: int = 4
    timeout_s: float = 120.0
    max_retries: int = 3


@dataclass(frozen=True)
class ProposedCluster:
    name: str
    description: str
    keyword_ids: tuple[int, ...]
    volume: int
    sample: tuple[str, ...]
    existing_id: int | None = None


@dataclass(frozen=True)
class SiteProposal:
    """One site's proposal; ``keyword_ids`` is everything selected, fingerprinted."""

    site_id: int
    keyword_ids: tuple[int, ...]
    fingerprint: str
    clusters: tuple[ProposedCluster, ...]
    unclustered_ids: tuple[int, ...] = ()
    invented: tuple[str, ...] = ()
    duplicates: int = 0

    @property
    def assigned(self) -> int:
        return sum(len(c.keyword_ids) for c in self.clusters)


@dataclass(frozen=True)
class SkippedSite:
    """Selected keywords left alone: a site below the minimum, or another account's site."""

    site_id: int
    keywords: int
    reason: str


@dataclass(frozen=True)
class ClusterProposal:
    tenant: Tenant
    engine: str
    model: str | None
    settings_source: str | None
    sites: tuple[SiteProposal, ...]
    skipped: tuple[SkippedSite, ...]
    usage: Usage
    elapsed_s: float
    created_at: datetime
    database: str

    @property
    def assigned(self) -> int:
        return sum(site.assigned for site in self.sites)

    @property
    def unclustered(self) -> int:
        return sum(len(site.unclustered_ids) for site in self.sites)


@dataclass(frozen=True)
class SiteApplied:
    site_id: int
    created: int
    reused: int
    assigned: int


@dataclass(frozen=True)
class ClusterApplied:
    run_id: str
    sites: tuple[SiteApplied, ...]
    elapsed_s: float

    @property
    def created(self) -> int:
        return sum(s.created for s in self.sites)

    @property
    def reused(self) -> int:
        return sum(s.reused for s in self.sites)

    @property
    def assigned(self) -> int:
        return sum(s.assigned for s in self.sites)


@dataclass(frozen=True)
class _Selected:
    site: SiteKeywords
    fingerprint: str
    existing: Mapping[str, int]
    name_length: int | None


# -- proposing ---------------------------------------------------------------------------


def propose(settings: Settings, request: ClusterRequest, progress: Progress | None = None,
            env: Mapping[str, str] | None = None) -> ClusterProposal:
    """Select the keywords, ask the engine, and return the proposal; writes nothing."""
    started = time.perf_counter()
    if request.engine not in ENGINES:
        raise ConfigError(f"unknown engine {request.engine!r} (choose {' or '.join(ENGINES)})")
    if request.all_keywords and request.keyword_ids:
        raise ConfigError("--all and --keyword-id exclude each other")
    database = create_engine(settings)
    with read_only(database, settings) as connection:
        schema = reflect(connection, settings)
        tenant = find_tenant(connection, schema, request.tenant)
        selected, skipped = _select(connection, schema, tenant, request)
        resolution = None if request.engine == "local" else resolve_settings_row(
            connection, schema, tenant, settings.system_account,
            request.overrides.no_fallback)
    resolved = None if resolution is None else openai_settings(
        resolution, request.overrides, env)
    engine = _engine(request, resolved)
    result = engine.cluster([s.site for s in selected], progress or NoProgress())
    sites = tuple(_site_proposal(s, g) for s, g in zip(selected, result.groupings, strict=True))
    return ClusterProposal(
        tenant=tenant, engine=engine.name, model=resolved.model if resolved else None,
        settings_source=resolved.describe() if resolved else None, sites=sites,
        skipped=tuple(skipped), usage=result.usage, elapsed_s=time.perf_counter() - started,
        created_at=datetime.now(UTC), database=display_url(database.url),
    )


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


def _engine(request: ClusterRequest, resolved: OpenAISettings | None) -> Engine:
    """The engine, imported only now: ``openai`` alone takes a second to import."""
    if resolved is None:
        from igny8ctl.cluster.local_engine import LocalEngine

        return LocalEngine()
    from igny8ctl.cluster.openai_engine import OpenAIEngine

    return OpenAIEngine(resolved, request.batch_size, request.concurrency, request.timeout_s,
                        request.max_retries)


def _select(connection: Connection, schema: Igny8Schema, tenant: Tenant,
            request: ClusterRequest) -> tuple[list[_Selected], list[SkippedSite]]:
    keyword, site = schema.keyword, schema.site
    own_sites = set(connection.scalars(sa.select(site.id).where(site.account_id == tenant.id)))
    if request.site_id is not None and request.site_id not in own_sites:
        raise ConfigError(f"site {request.site_id} is not a site of tenant {tenant.slug}")
    condition: list[sa.ColumnElement[bool]] = [keyword.account_id == tenant.id]
    if request.site_id is not None:
        condition.append(keyword.site_id == request.site_id)
    if request.keyword_ids:
        ids = sorted(set(request.keyword_ids))
        found = set(_chunked_scalars(connection, ids, lambda chunk: sa.select(keyword.id).where(
            keyword.id.in_(chunk), *condition)))
        foreign = [i for i in ids if i not in found]
        if foreign:
            where = f"site {request.site_id} of " if request.site_id is not None else ""
            raise ConfigError(
                f"keyword id(s) {_ids(foreign)} are not keywords of {where}tenant "
                f"{tenant.slug}; refusing to cluster any")
        condition.append(keyword.id.in_(ids))
        what = "the given"
    elif request.all_keywords:
        condition.append(keyword.status != "archived")
        what = "non-archived"
    else:
        condition += [keyword.cluster_id.is_(None), keyword.status == "pending"]
        what = "pending, unclustered"

    counts = connection.execute(
        sa.select(keyword.site_id, sa.func.count()).where(*condition)
        .group_by(keyword.site_id).order_by(keyword.site_id)).all()
    selected: list[_Selected] = []
    skipped: list[SkippedSite] = []
    for site_id, count in counts:
        if site_id not in own_sites:
            skipped.append(SkippedSite(int(site_id), int(count),
                                       "the site belongs to another account"))
        elif count < MIN_KEYWORDS:
            skipped.append(SkippedSite(int(site_id), int(count),
                                       f"fewer than {MIN_KEYWORDS} keywords"))
        else:
            selected.append(_load_site(connection, schema, tenant, int(site_id), condition))
    if not selected:
        total = sum(int(count) for _, count in counts)
        if not total:
            raise ConfigError(f"tenant {tenant.slug} has no {what} keywords to cluster")
        raise ConfigError(
            f"tenant {tenant.slug} has {total} {what} keyword(s), but no site of its own with "
            f"at least {MIN_KEYWORDS}: auto-cluster needs {MIN_KEYWORDS} or more per site")
    return selected, skipped


def _load_site(connection: Connection, schema: Igny8Schema, tenant: Tenant, site_id: int,
               condition: Sequence[sa.ColumnElement[bool]]) -> _Selected:
    keyword, cluster = schema.keyword, schema.cluster
    rows = connection.execute(
        sa.select(*_fingerprinted(schema), keyword.volume)
        .where(*condition, keyword.site_id == site_id).order_by(keyword.id)).all()
    keywords = [Keyword(int(r[0]), str(r[1]), int(r[5] or 0)) for r in rows]
    existing = {
        str(name): int(cluster_id) for cluster_id, name in connection.execute(
            sa.select(cluster.id, cluster.name)
            .where(cluster.account_id == tenant.id, cluster.site_id == site_id)
            .order_by(cluster.volume.desc(), cluster.id))
    }
    return _Selected(SiteKeywords(site_id, keywords, tuple(existing)),
                     _fingerprint(r[:5] for r in rows), existing,
                     getattr(cluster.name.type, "length", None))


def _site_proposal(selected: _Selected, grouping: Grouping) -> SiteProposal:
    """Name rules and merging: an empty name becomes the group's highest-volume keyword;
    groups whose names match once normalised become one cluster (a topic split across
    batches, or a name the model repeated); a name matching an existing cluster of the
    site takes that cluster's exact name, so it is reused rather than duplicated."""
    keywords = {k.id: k for k in selected.site.keywords}
    existing_by_key: dict[str, str] = {}
    for name in sorted(selected.existing, key=lambda n: selected.existing[n]):
        existing_by_key.setdefault(name_key(name), name)
    merged: dict[str, tuple[str, str, list[int]]] = {}
    for group in grouping.groups:
        members = [keywords[i] for i in group.keyword_ids]
        name = " ".join(group.name.split())[:selected.name_length]
        if not name_key(name):
            name = _top(members).text[:selected.name_length]
        key = name_key(name) or name.casefold()
        if name not in selected.existing:
            name = existing_by_key.get(key, name)
        if key in merged:
            first_name, description, ids = merged[key]
            merged[key] = (first_name, description or group.description, ids + list(
                group.keyword_ids))
        else:
            merged[key] = (name, group.description, list(group.keyword_ids))
    clusters = []
    for name, description, ids in merged.values():
        members = sorted((keywords[i] for i in ids), key=lambda k: (-k.volume, k.text, k.id))
        clusters.append(ProposedCluster(
            name=name, description=" ".join(description.split()),
            keyword_ids=tuple(sorted(ids)), volume=sum(k.volume for k in members),
            sample=tuple(k.text for k in members[:SAMPLE]),
            existing_id=selected.existing.get(name)))
    clusters.sort(key=lambda c: (-c.volume, c.name))
    return SiteProposal(
        site_id=selected.site.site_id,
        keyword_ids=tuple(k.id for k in selected.site.keywords),
        fingerprint=selected.fingerprint, clusters=tuple(clusters),
        unclustered_ids=grouping.unclustered, invented=grouping.invented,
        duplicates=grouping.duplicates)


def _top(keywords: Sequence[Keyword]) -> Keyword:
    return min(keywords, key=lambda k: (-k.volume, k.text, k.id))


# -- fingerprints --------------------------------------------------------------------------


def _fingerprinted(schema: Igny8Schema) -> tuple[sa.Column[Any], ...]:
    keyword = schema.keyword
    return keyword.id, keyword.keyword, keyword.site_id, keyword.cluster_id, keyword.status


def _fingerprint(rows: Iterable[Sequence[Any]]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([row[0], row[1], row[2], row[3], row[4]]).encode() + b"\n")
    return digest.hexdigest()


def _current_fingerprint(connection: Connection, schema: Igny8Schema, tenant: Tenant,
                         ids: Sequence[int], lock: bool = False) -> str:
    keyword = schema.keyword

    def rows() -> Iterator[Sequence[Any]]:
        for start in range(0, len(ids), CHUNK):
            query = (sa.select(*_fingerprinted(schema))
                     .where(keyword.account_id == tenant.id,
                            keyword.id.in_(ids[start:start + CHUNK]))
                     .order_by(keyword.id))
            yield from connection.execute(query.with_for_update() if lock else query)

    return _fingerprint(rows())


def _chunked_scalars(connection: Connection, ids: Sequence[int],
                     query: Any) -> Iterator[Any]:
    for start in range(0, len(ids), CHUNK):
        yield from connection.scalars(query(ids[start:start + CHUNK]))


def _ids(ids: Sequence[int], limit: int = 20) -> str:
    shown = ", ".join(map(str, ids[:limit]))
    return shown + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")


# -- writing -----------------------------------------------------------------------------


def apply(settings: Settings, proposal: ClusterProposal, wait_seconds: float = 0.0,
          plan: str | None = None) -> ClusterApplied:
    """Write ``proposal``: one journaled transaction per site, under the tenant's job lock.

    Refuses (``Refused``, nothing written) if any site's keywords changed since the
    proposal: all sites are checked before the first is written, and each again under row
    locks in its own transaction. ``igny8ctl fix undo RUN_ID`` reverts the run.
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
    if _current_fingerprint(connection, schema, tenant, site.keyword_ids, lock) \
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
    connection.execute(assignment.insert(), [
        {"keyword_id": keyword_id, "cluster_id": ids[c.name]}
        for c in site.clusters for keyword_id in c.keyword_ids])
    planned = sa.select(assignment.c.keyword_id)
    mine = sa.and_(keyword.account_id == tenant.id, keyword.id.in_(planned))
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
