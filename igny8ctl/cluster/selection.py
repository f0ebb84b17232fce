"""Which keywords a cluster job takes, read from the database a batch at a time, and the
fingerprint that binds a proposal to them.

Every query is filtered by the tenant's account id. Keywords are read by keyset pages in
id order, each page its own short read-only transaction, so memory is bounded by the
batches in flight and no snapshot is held while the model thinks. The fingerprint digests
each selected keyword's id, text, site, cluster and status as read; applying re-reads the
same ids and refuses when the digest differs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from igny8ctl.cluster.base import MIN_KEYWORDS, Batch, Keyword
from igny8ctl.cluster.contract import printable_text
from igny8ctl.cluster.types import ClusterRequest, SkippedSite
from igny8ctl.config import Settings
from igny8ctl.db import Igny8Schema, connect
from igny8ctl.dialects import dialect_of
from igny8ctl.errors import ConfigError
from igny8ctl.plans import Fingerprint
from igny8ctl.render.text import listing
from igny8ctl.tables import KeywordTable
from igny8ctl.tenants import Tenant

CHUNK = 500
KNOWN_NAMES_LIMIT = 100
WHOLE_SITE_PAGE = 5000


def pending(keyword: KeywordTable) -> sa.ColumnElement[bool]:
    """The keywords auto-cluster takes by default, as the app does: pending, in no cluster."""
    return sa.and_(keyword.status == "pending", keyword.cluster_id.is_(None))


@dataclass(frozen=True)
class SiteSelection:
    site_id: int
    count: int
    existing: Mapping[str, int]
    """The site's clusters, name to id, largest first."""


@dataclass(frozen=True)
class Selection:
    tenant: Tenant
    condition: tuple[sa.ColumnElement[bool], ...]
    sites: tuple[SiteSelection, ...]
    skipped: tuple[SkippedSite, ...]
    name_length: int | None


def select(connection: Connection, schema: Igny8Schema, tenant: Tenant,
           request: ClusterRequest) -> Selection:
    """The sites to cluster and how many keywords each: counts only, nothing loaded."""
    keyword, site, cluster = schema.keyword, schema.site, schema.cluster
    own_sites = set(connection.scalars(sa.select(site.id).where(site.account_id == tenant.id)))
    if request.site_id is not None and request.site_id not in own_sites:
        raise ConfigError(f"site {request.site_id} is not a site of tenant {tenant.slug}")
    condition: list[sa.ColumnElement[bool]] = [keyword.account_id == tenant.id]
    if request.site_id is not None:
        condition.append(keyword.site_id == request.site_id)
    if request.keyword_ids:
        ids = sorted(set(request.keyword_ids))
        found = set(chunked_scalars(connection, ids, lambda chunk: sa.select(keyword.id).where(
            keyword.id.in_(chunk), *condition)))
        foreign = [i for i in ids if i not in found]
        if foreign:
            where = f"site {request.site_id} of " if request.site_id is not None else ""
            raise ConfigError(
                f"keyword id(s) {listing(foreign)} are not keywords of {where}tenant "
                f"{tenant.slug}; refusing to cluster any")
        condition.append(keyword.id.in_(ids))
        what = "the given"
    elif request.all_keywords:
        condition.append(keyword.status != "archived")
        what = "non-archived"
    else:
        condition.append(pending(keyword))
        what = "pending, unclustered"

    counts = connection.execute(
        sa.select(keyword.site_id, sa.func.count()).where(*condition)
        .group_by(keyword.site_id).order_by(keyword.site_id)).all()
    selected: list[SiteSelection] = []
    skipped: list[SkippedSite] = []
    for site_id, count in counts:
        if site_id not in own_sites:
            skipped.append(SkippedSite(int(site_id), int(count),
                                       "the site belongs to another account"))
        elif count < MIN_KEYWORDS:
            skipped.append(SkippedSite(int(site_id), int(count),
                                       f"fewer than {MIN_KEYWORDS} keywords"))
        else:
            existing = {str(name): int(cluster_id) for cluster_id, name in connection.execute(
                sa.select(cluster.id, cluster.name)
                .where(cluster.account_id == tenant.id, cluster.site_id == site_id)
                .order_by(cluster.volume.desc(), cluster.id))}
            selected.append(SiteSelection(int(site_id), int(count), existing))
    if not selected:
        total = sum(int(count) for _, count in counts)
        if not total:
            raise ConfigError(f"tenant {tenant.slug} has no {what} keywords to cluster")
        raise ConfigError(
            f"tenant {tenant.slug} has {total} {what} keyword(s), but no site of its own with "
            f"at least {MIN_KEYWORDS}: auto-cluster needs {MIN_KEYWORDS} or more per site")
    return Selection(tenant, tuple(condition), tuple(selected), tuple(skipped),
                     getattr(cluster.name.type, "length", None))


def batches(database: Engine, settings: Settings, schema: Igny8Schema, selection: Selection,
            site: SiteSelection, batch_size: int | None,
            fingerprint: Fingerprint) -> Iterator[Batch]:
    """The site's selected keywords in id order, ``batch_size`` at a time (the whole site as
    one batch when None), each page read in its own read-only transaction; every row read
    is added to ``fingerprint``. Existing names holding control characters are not offered
    to the model: it could only echo them into an answer that is then refused."""
    keyword = schema.keyword
    known = tuple(name for name in site.existing if printable_text(name))[:KNOWN_NAMES_LIMIT]
    page = batch_size or WHOLE_SITE_PAGE
    whole: list[Keyword] = []
    index = 0
    last: int | None = None
    with connect(database) as connection:
        while True:
            query = (sa.select(*fingerprinted(schema), keyword.volume)
                     .where(*selection.condition, keyword.site_id == site.site_id,
                            *(() if last is None else (keyword.id > last,)))
                     .order_by(keyword.id).limit(page))
            with connection.begin():
                dialect_of(connection).begin_read_only(connection, settings.statement_timeout_ms)
                rows = connection.execute(query).all()
            for row in rows:
                fingerprint.add(row[:5])
            keywords = [Keyword(int(r[0]), str(r[1]), int(r[5] or 0)) for r in rows]
            if keywords and batch_size is not None:
                yield Batch(site.site_id, index, tuple(keywords), known)
                index += 1
            whole += keywords if batch_size is None else ()
            if len(rows) < page:
                break
            last = int(rows[-1][0])
    if batch_size is None and whole:
        yield Batch(site.site_id, 0, tuple(whole), known)


def fingerprinted(schema: Igny8Schema) -> tuple[sa.Column[Any], ...]:
    keyword = schema.keyword
    return keyword.id, keyword.keyword, keyword.site_id, keyword.cluster_id, keyword.status


def current_fingerprint(connection: Connection, schema: Igny8Schema, tenant: Tenant,
                        ids: Iterator[int], lock: bool = False) -> str:
    """The fingerprint of the tenant's keywords ``ids`` (ascending) as they are now."""
    keyword = schema.keyword
    digest = Fingerprint()
    for chunk in chunks(ids):
        query = (sa.select(*fingerprinted(schema))
                 .where(keyword.account_id == tenant.id, keyword.id.in_(chunk))
                 .order_by(keyword.id))
        for row in connection.execute(query.with_for_update() if lock else query):
            digest.add(row)
    return digest.hexdigest()


def chunked_scalars(connection: Connection, ids: Sequence[int], query: Any) -> Iterator[Any]:
    for start in range(0, len(ids), CHUNK):
        yield from connection.scalars(query(ids[start:start + CHUNK]))


def chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    """``ids`` in lists of at most ``CHUNK``: what one IN (...) may hold on every dialect."""
    chunk: list[int] = []
    for value in ids:
        chunk.append(value)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
