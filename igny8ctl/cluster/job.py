"""The cluster job: choose a tenant's keywords, stream them in batches to an engine, and
shape its answers into a proposal; ``igny8ctl.cluster.writer`` writes one.

Every query is filtered by the tenant's account id; the only other account ever read is
the system account's openai settings, the app's sanctioned fallback. The model is asked
outside any database transaction, and a proposal is written only if its keywords are
unchanged (a fingerprint), so a slow model, a saved plan, or the web app working
meanwhile can never make it write stale decisions. ``openai`` is imported in the
background while the database is read: it costs more than the reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from igny8ctl.cluster import prefetch
from igny8ctl.cluster.base import Batch, BatchAnswer, Engine, NoProgress, Progress, Usage
from igny8ctl.cluster.naming import ClusterNames
from igny8ctl.cluster.selection import Selection, SiteSelection, batches, select
from igny8ctl.cluster.settings import OpenAISettings, openai_settings, resolve_settings_row
from igny8ctl.cluster.types import (
    ENGINES,
    INVENTED_KEPT,
    ClusterProposal,
    ClusterRequest,
    KeywordIds,
    SiteProposal,
)
from igny8ctl.config import Settings
from igny8ctl.db import create_engine, display_url, read_only, reflect
from igny8ctl.errors import ConfigError
from igny8ctl.plans import Fingerprint
from igny8ctl.tenants import find_tenant


def propose(settings: Settings, request: ClusterRequest, progress: Progress | None = None,
            env: Mapping[str, str] | None = None) -> ClusterProposal:
    """Select the keywords, ask the engine batch by batch, and return the proposal; writes
    nothing."""
    started = time.perf_counter()
    if request.engine not in ENGINES:
        raise ConfigError(f"unknown engine {request.engine!r} (choose {' or '.join(ENGINES)})")
    if request.all_keywords and request.keyword_ids:
        raise ConfigError("--all and --keyword-id exclude each other")
    if request.engine == "openai":
        prefetch.start()
    database = create_engine(settings)
    with read_only(database, settings) as connection:
        schema = reflect(connection, settings)
        tenant = find_tenant(connection, schema, request.tenant)
        selection = select(connection, schema, tenant, request)
        resolution = None if request.engine == "local" else resolve_settings_row(
            connection, schema, tenant, settings.system_account,
            request.overrides.no_fallback)
    resolved = None if resolution is None else openai_settings(
        resolution, request.overrides, env)
    prefetch.wait()
    engine = _engine(request, resolved)
    progress = progress or NoProgress()
    sites = {site.site_id: _SiteAnswers(site, selection) for site in selection.sites}
    progress.planned(sum(-(-s.count // engine.batch_size) if engine.batch_size else 1
                         for s in selection.sites))
    usage = Usage()

    def every_batch() -> Iterator[Batch]:
        for site in selection.sites:
            yield from batches(database, settings, schema, selection, site, engine.batch_size,
                               sites[site.site_id].fingerprint)

    for answer in engine.cluster(every_batch(), progress):
        sites[answer.batch.site_id].add(answer)
        usage += answer.usage
    return ClusterProposal(
        tenant=tenant, engine=engine.name, model=resolved.model if resolved else None,
        settings_source=resolved.describe() if resolved else None,
        sites=tuple(s.proposal() for s in sites.values()),
        skipped=selection.skipped, usage=usage, elapsed_s=time.perf_counter() - started,
        created_at=datetime.now(UTC), database=display_url(database.url),
    )


@dataclass
class _SiteAnswers:
    site: SiteSelection
    selection: Selection
    fingerprint: Fingerprint = field(default_factory=Fingerprint)
    unclustered: KeywordIds = field(default_factory=KeywordIds)
    invented: list[str] = field(default_factory=list)
    invented_count: int = 0
    duplicates: int = 0
    names: ClusterNames = field(init=False)

    def __post_init__(self) -> None:
        self.names = ClusterNames(self.site.existing, self.selection.name_length)

    def add(self, answer: BatchAnswer) -> None:
        self.names.add(answer)
        self.unclustered.extend(answer.unclustered)
        self.invented += answer.invented[:INVENTED_KEPT - len(self.invented)]
        self.invented_count += len(answer.invented)
        self.duplicates += answer.duplicates

    def proposal(self) -> SiteProposal:
        return SiteProposal(
            site_id=self.site.site_id, fingerprint=self.fingerprint.hexdigest(),
            clusters=self.names.clusters(), unclustered_ids=self.unclustered,
            invented=tuple(self.invented), invented_count=self.invented_count,
            duplicates=self.duplicates)

def _engine(request: ClusterRequest, resolved: OpenAISettings | None) -> Engine:
    """The engine, imported only now: ``openai`` alone takes a good part of a second."""
    if resolved is None:
        from igny8ctl.cluster.local_engine import LocalEngine

        return LocalEngine()
    from igny8ctl.cluster.openai_engine import OpenAIEngine

    return OpenAIEngine(resolved, request.batch_size, request.concurrency, request.timeout_s,
                        request.max_retries)

