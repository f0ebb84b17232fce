"""What the cluster job takes and returns: the request, the proposal, the written result.

A proposal is compact: per cluster the keyword ids as varint gaps (about a byte or two
each), never the keywords' text, so a tenant's size costs little beyond the batches in
flight.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from igny8ctl.cluster.base import Usage
from igny8ctl.cluster.settings import Overrides
from igny8ctl.tenants import Tenant

ENGINES = ("openai", "local")
INVENTED_KEPT = 100


class KeywordIds:
    """Ascending ids, appended in order and kept as LEB128 gaps: dense ids take a byte."""

    __slots__ = ("_count", "_data", "_last")

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self._data = bytearray()
        self._count = 0
        self._last = 0
        self.extend(ids)

    def extend(self, ids: Iterable[int]) -> None:
        data = self._data
        for value in ids:
            gap = value - self._last
            if gap <= 0 and self._count:
                raise ValueError("keyword ids must be appended in ascending order")
            self._last = value
            self._count += 1
            while gap >= 0x80:
                data.append(gap & 0x7F | 0x80)
                gap >>= 7
            data.append(gap)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[int]:
        value = shift = gap = 0
        for byte in self._data:
            gap |= (byte & 0x7F) << shift
            if byte & 0x80:
                shift += 7
                continue
            value += gap
            yield value
            shift = gap = 0


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
    keyword_ids: KeywordIds
    volume: int
    sample: tuple[str, ...]
    existing_id: int | None = None


@dataclass(frozen=True)
class SiteProposal:
    """One site's proposal: every selected keyword is in one cluster or unclustered, and
    ``fingerprint`` digests them all (in id order) as they were read."""

    site_id: int
    fingerprint: str
    clusters: tuple[ProposedCluster, ...]
    unclustered_ids: KeywordIds = field(default_factory=KeywordIds)
    invented: tuple[str, ...] = ()
    """The first ``INVENTED_KEPT`` keywords the model invented (dropped), as a sample."""
    invented_count: int = 0
    duplicates: int = 0

    @property
    def assigned(self) -> int:
        return sum(len(c.keyword_ids) for c in self.clusters)

    @property
    def selected(self) -> int:
        return self.assigned + len(self.unclustered_ids)

    def keyword_ids(self) -> Iterator[int]:
        """Every selected keyword id, ascending, without copying the clusters' arrays."""
        return heapq.merge(self.unclustered_ids, *(c.keyword_ids for c in self.clusters))


@dataclass(frozen=True)
class SkippedSite:
    """Selected keywords left alone: a site below the minimum, or another account's site."""

    site_id: int
    keywords: int
    reason: str


@dataclass(frozen=True)
class ClusterProposal:
    KIND: ClassVar[str] = "cluster.proposal"

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
class ClusterResult:
    """What ``cluster run --apply`` and ``cluster apply`` report: the proposal and its run."""

    KIND: ClassVar[str] = "cluster.result"

    proposal: ClusterProposal
    applied: ClusterApplied
