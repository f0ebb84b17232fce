"""Types every part of the cluster job shares: keywords in, groupings out, progress, errors."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from igny8ctl.errors import ExitCode, Igny8Error

MIN_KEYWORDS = 5
"""The app refuses to auto-cluster fewer keywords than this; so do we (per site)."""


class ModelError(Igny8Error):
    """The model failed: unreachable, retries exhausted, malformed or truncated answer.

    Exit code 3, like an unreachable database: a service the job depends on failed, and
    nothing was written.
    """

    exit_code = ExitCode.DATABASE


class Keyword(NamedTuple):
    id: int
    text: str
    volume: int


@dataclass(frozen=True)
class Group:
    """A cluster as an engine proposes it, before naming rules and merging."""

    name: str
    description: str
    keyword_ids: tuple[int, ...]


@dataclass(frozen=True)
class Usage:
    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.requests + other.requests, self.retries + other.retries,
                     self.prompt_tokens + other.prompt_tokens,
                     self.completion_tokens + other.completion_tokens)


@dataclass(frozen=True)
class Batch:
    """Keywords of one site sent together (an engine's unit of work), in id order."""

    site_id: int
    index: int
    keywords: tuple[Keyword, ...]
    known_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchAnswer:
    """An engine's answer for one batch; every keyword of it is in a group or unclustered."""

    batch: Batch
    groups: tuple[Group, ...]
    unclustered: tuple[int, ...] = ()
    invented: tuple[str, ...] = ()
    duplicates: int = 0
    usage: Usage = field(default_factory=Usage)


class Progress(Protocol):
    """How the core reports progress without knowing about terminals."""

    def planned(self, steps: int) -> None:
        """``steps`` more units of work (requests, or sites for the local engine) are due."""

    def done(self, steps: int = 1) -> None:
        """``steps`` units of work finished."""


class NoProgress:
    def planned(self, steps: int) -> None:
        pass

    def done(self, steps: int = 1) -> None:
        pass


class Engine(Protocol):
    """Batches in, answers out in the same order; ``batch_size`` None means one batch per
    site (an engine that must see a site whole)."""

    name: str
    batch_size: int | None

    def cluster(self, batches: Iterable[Batch], progress: Progress) -> Iterator[BatchAnswer]: ...


_NON_WORD = re.compile(r"[^0-9a-z]+")


def stem(word: str) -> str:
    """A light English stemmer: enough to make "backlinks" and "backlink" one word."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    return [stem(w) for w in _NON_WORD.split(text.casefold()) if w]


def name_key(name: str) -> str:
    """Names equal under this key are one cluster: case, punctuation and plurals ignored."""
    return " ".join(words(name))
