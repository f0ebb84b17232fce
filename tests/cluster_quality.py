"""The labelled keyword set and the adjusted Rand index, shared by the tests and the bench."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Hashable, Sequence
from math import comb
from pathlib import Path

from igny8ctl.cluster.base import Keyword

LABELLED = Path(__file__).resolve().parent / "fixtures" / "keywords_labelled.csv"


def labelled_keywords() -> tuple[list[Keyword], dict[int, str]]:
    """Keywords (ids from 1, in file order) and each id's topic."""
    with LABELLED.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    keywords = [Keyword(i, row["keyword"], int(row["volume"])) for i, row in enumerate(rows, 1)]
    return keywords, {i: row["topic"] for i, row in enumerate(rows, 1)}


def adjusted_rand_index(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Hubert and Arabie's ARI: 1 for identical partitions, about 0 for chance."""
    pairs = Counter(zip(truth, predicted, strict=True))
    index = sum(comb(c, 2) for c in pairs.values())
    truth_pairs = sum(comb(c, 2) for c in Counter(truth).values())
    predicted_pairs = sum(comb(c, 2) for c in Counter(predicted).values())
    expected = truth_pairs * predicted_pairs / comb(len(truth), 2)
    maximum = (truth_pairs + predicted_pairs) / 2
    return 1.0 if maximum == expected else (index - expected) / (maximum - expected)
