"""Name rules and merging, fed one answered batch at a time.

An empty name becomes the group's highest-volume keyword; groups whose names match once
normalised become one cluster (a topic split across batches, or a name the model
repeated); a name matching an existing cluster of the site takes that cluster's exact
name, so it is reused rather than duplicated. Only ids, volumes and a three-keyword
sample are kept per cluster, whatever the site's size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from igny8ctl.cluster.base import BatchAnswer, Keyword, name_key
from igny8ctl.cluster.types import KeywordIds, ProposedCluster

SAMPLE = 3


@dataclass
class _Merged:
    name: str
    description: str
    ids: KeywordIds = field(default_factory=KeywordIds)
    volume: int = 0
    top: list[tuple[int, str, int]] = field(default_factory=list)


class ClusterNames:
    """One site's clusters as batches are answered, in batch (so id) order."""

    def __init__(self, existing: Mapping[str, int], name_length: int | None) -> None:
        self._existing = existing
        self._name_length = name_length
        self._existing_by_key: dict[str, str] = {}
        for name in sorted(existing, key=lambda n: existing[n]):
            self._existing_by_key.setdefault(name_key(name), name)
        self._merged: dict[str, _Merged] = {}

    def add(self, answer: BatchAnswer) -> None:
        keywords = {k.id: k for k in answer.batch.keywords}
        added: dict[str, list[int]] = {}
        for group in answer.groups:
            members = [keywords[i] for i in group.keyword_ids]
            name = " ".join(group.name.split())[:self._name_length]
            if not name_key(name):
                name = _top(members).text[:self._name_length]
            key = name_key(name) or name.casefold()
            if name not in self._existing:
                name = self._existing_by_key.get(key, name)
            merged = self._merged.get(key)
            if merged is None:
                merged = self._merged[key] = _Merged(name, group.description)
            merged.description = merged.description or group.description
            merged.volume += sum(k.volume for k in members)
            merged.top = sorted(merged.top + [(-k.volume, k.text, k.id) for k in members])[
                :SAMPLE]
            added.setdefault(key, []).extend(group.keyword_ids)
        for key, ids in added.items():
            self._merged[key].ids.extend(sorted(ids))

    def clusters(self) -> tuple[ProposedCluster, ...]:
        clusters = [ProposedCluster(
            name=m.name, description=" ".join(m.description.split()), keyword_ids=m.ids,
            volume=m.volume, sample=tuple(text for _, text, _ in m.top),
            existing_id=self._existing.get(m.name)) for m in self._merged.values()]
        clusters.sort(key=lambda c: (-c.volume, c.name))
        return tuple(clusters)


def _top(keywords: Sequence[Keyword]) -> Keyword:
    return min(keywords, key=lambda k: (-k.volume, k.text, k.id))
