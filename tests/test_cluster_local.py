"""The offline engine: quality on the labelled set (adjusted Rand index), determinism,
naming, and that it stays bounded on a large site."""

from __future__ import annotations

import random

from igny8ctl.cluster.base import Keyword
from igny8ctl.cluster.local_engine import cluster_keywords
from tests.cluster_quality import adjusted_rand_index, labelled_keywords

MIN_ARI = 0.9


def test_adjusted_rand_index_on_the_labelled_set() -> None:
    keywords, topics = labelled_keywords()
    assert len(keywords) >= 100 and len(set(topics.values())) == 10
    label = {i: n for n, group in enumerate(cluster_keywords(keywords))
             for i in group.keyword_ids}
    ids = [k.id for k in keywords]
    ari = adjusted_rand_index([topics[i] for i in ids], [label[i] for i in ids])
    assert ari >= MIN_ARI, f"ARI {ari:.3f}"


def test_adjusted_rand_index_reference_values() -> None:
    assert adjusted_rand_index([1, 1, 2, 2], ["a", "a", "b", "b"]) == 1.0
    assert round(adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]), 3) == -0.5
    assert round(adjusted_rand_index([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]), 3) == 0.242


def test_deterministic_whatever_the_order() -> None:
    keywords, _ = labelled_keywords()
    shuffled = keywords[:]
    random.Random(7).shuffle(shuffled)
    assert cluster_keywords(shuffled) == cluster_keywords(keywords)


def test_named_after_the_highest_volume_keyword() -> None:
    keywords = [Keyword(1, "keto snacks", 10), Keyword(2, "keto diet", 900),
                Keyword(3, "keto diet plan", 50), Keyword(4, "solar panel cost", 70),
                Keyword(5, "solar panels for home", 80)]
    groups = {g.name: sorted(g.keyword_ids) for g in cluster_keywords(keywords)}
    assert groups == {"keto diet": [1, 2, 3], "solar panels for home": [4, 5]}


def test_bounded_on_a_large_site() -> None:
    base, _ = labelled_keywords()
    vocabulary = sorted({w for k in base for w in k.text.split()})
    rng = random.Random(1)
    texts: dict[str, None] = {}
    while len(texts) < 3000:
        texts[" ".join(rng.choice(base).text.split()[:3] + rng.sample(vocabulary, 2))] = None
    keywords = [Keyword(i, text, rng.randint(10, 9000)) for i, text in enumerate(texts, 1)]
    groups = cluster_keywords(keywords)
    assigned = sorted(i for g in groups for i in g.keyword_ids)
    assert assigned == list(range(1, 3001))
