"""The local engine: lexical clustering with no network, no model and no heavy dependency.

Each keyword becomes a TF-IDF vector of its content words (lightly stemmed) and of the
character 4-grams inside them, so "backlink" meets "backlinks" and "dentist" meets
"dental". Similar pairs are found through an inverted index (most frequent features are
dropped first if the pair budget would be exceeded), only each keyword's nearest
neighbours are kept, and average-linkage agglomerative clustering merges groups while
their mean similarity stays above a threshold. Time and memory stay bounded: at most
``PAIR_BUDGET`` similarity updates and ``NEIGHBOURS`` edges per keyword. Deterministic:
same keywords, same clusters, whatever their order in the database.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from igny8ctl.cluster.base import Batch, BatchAnswer, Group, Keyword, Progress, words

THRESHOLD = 0.1
NEIGHBOURS = 20
PAIR_BUDGET = 2_000_000
CHAR_WEIGHT = 0.6
GRAM = 4

STOPWORDS = frozenset({
    "a", "about", "after", "all", "an", "and", "any", "are", "as", "at", "be", "beginner", "best",
    "by", "can", "cheap", "cost", "do", "doe", "example", "for", "free", "from", "get",
    "good", "guide", "how", "i", "idea", "in", "is", "it", "me", "my", "near", "new", "of", "on",
    "online", "or", "should", "that", "the", "thing", "this", "tip", "to", "top", "vs", "way",
    "what", "when", "where", "which", "who", "why", "will", "with", "without", "worth", "you",
    "your", "2024", "2025", "2026",
})
"""Words that qualify a search rather than name its topic (SEO modifiers among them)."""


class LocalEngine:
    name = "local"

    batch_size: int | None = None

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold

    def cluster(self, batches: Iterable[Batch], progress: Progress) -> Iterator[BatchAnswer]:
        for batch in batches:
            yield BatchAnswer(batch, tuple(cluster_keywords(batch.keywords, self.threshold)))
            progress.done()


def cluster_keywords(keywords: Sequence[Keyword], threshold: float = THRESHOLD) -> list[Group]:
    """Groups named after their highest-volume keyword, in order of their first keyword id."""
    ordered = sorted(keywords, key=lambda k: k.id)
    vectors = _vectors([k.text for k in ordered])
    labels = _agglomerate(_neighbours(vectors), len(ordered), threshold)
    members: dict[int, list[Keyword]] = {}
    for keyword, label in zip(ordered, labels, strict=True):
        members.setdefault(label, []).append(keyword)
    groups = []
    for group in members.values():
        top = min(group, key=lambda k: (-k.volume, k.text, k.id))
        groups.append(Group(top.text, "", tuple(k.id for k in group)))
    return groups


def _features(text: str) -> dict[str, float]:
    tokens = words(text)
    content = [w for w in tokens if w not in STOPWORDS] or tokens
    features: dict[str, float] = {}
    for word in content:
        features["w " + word] = features.get("w " + word, 0.0) + 1.0
        padded = f"<{word}>"
        grams = [padded[i:i + GRAM] for i in range(max(1, len(padded) - GRAM + 1))]
        for gram in grams:
            features["c " + gram] = features.get("c " + gram, 0.0) + CHAR_WEIGHT / len(grams)
    return features


def _vectors(texts: Sequence[str]) -> list[dict[str, float]]:
    counts = [_features(text) for text in texts]
    df: Counter[str] = Counter()
    for features in counts:
        df.update(features.keys())
    n = len(texts)
    vectors = []
    for features in counts:
        weights = {f: tf * (math.log((1 + n) / (1 + df[f])) + 1) for f, tf in features.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        vectors.append({f: w / norm for f, w in weights.items()})
    return vectors


def _neighbours(vectors: Sequence[dict[str, float]]) -> dict[tuple[int, int], float]:
    """Cosine similarities of each keyword's nearest neighbours, as ``(i, j): s`` with i < j."""
    postings: dict[str, list[tuple[int, float]]] = {}
    for index, vector in enumerate(vectors):
        for feature, weight in vector.items():
            postings.setdefault(feature, []).append((index, weight))
    spent = 0
    indexed: set[str] = set()
    for feature, entries in sorted(postings.items(), key=lambda p: (len(p[1]), p[0])):
        cost = len(entries) ** 2
        if len(entries) > 1 and spent + cost > PAIR_BUDGET:
            break
        spent += cost
        indexed.add(feature)
    edges: dict[tuple[int, int], float] = {}
    for index, vector in enumerate(vectors):
        scores: dict[int, float] = {}
        get = scores.get
        for feature, weight in vector.items():
            if feature in indexed:
                for other, other_weight in postings[feature]:
                    scores[other] = get(other, 0.0) + weight * other_weight
        scores.pop(index, None)
        nearest = heapq.nlargest(NEIGHBOURS, scores.items(), key=lambda s: (s[1], -s[0]))
        for other, score in nearest:
            edges[min(index, other), max(index, other)] = score
    return edges


def _agglomerate(edges: dict[tuple[int, int], float], n: int, threshold: float) -> list[int]:
    """Average linkage over a sparse graph (absent pairs count as 0): merge the pair of
    groups with the highest mean similarity until none reaches ``threshold``."""
    sums: list[dict[int, float]] = [{} for _ in range(n)]
    for (i, j), score in edges.items():
        sums[i][j] = sums[j][i] = score
    size = [1] * n
    version = [0] * n
    parent = list(range(n))
    heap = [(-score, i, j, 0, 0) for (i, j), score in edges.items() if score >= threshold]
    heapq.heapify(heap)
    while heap:
        _, a, b, version_a, version_b = heapq.heappop(heap)
        if (version[a], version[b]) != (version_a, version_b) or parent[a] != a \
                or parent[b] != b:
            continue
        parent[b] = a
        size[a] += size[b]
        version[a] += 1
        merged = sums[a]
        merged.pop(b, None)
        for other, score in sums[b].items():
            if other != a:
                merged[other] = merged.get(other, 0.0) + score
                sums[other].pop(b, None)
                sums[other][a] = merged[other]
        sums[b] = {}
        for other, score in merged.items():
            mean = score / (size[a] * size[other])
            if mean >= threshold:
                first, second = (a, other) if a < other else (other, a)
                heapq.heappush(heap, (-mean, first, second, version[first], version[second]))
    return [_root(parent, i) for i in range(n)]


def _root(parent: list[int], index: int) -> int:
    while parent[index] != index:
        parent[index] = parent[parent[index]]
        index = parent[index]
    return index
