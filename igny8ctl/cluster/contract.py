"""The model contract: what is sent, the JSON schema the answer must follow, and its checks.

The answer is ``{"clusters": [{"name", "description", "keywords": [...]}]}``. Keywords must
come back exactly as sent; anything else is treated as invented. Fields beyond ``name``
and ``keywords`` are optional when reading, so OpenAI-compatible servers that ignore
``strict`` still pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SCHEMA_NAME = "keyword_clusters"

RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "clusters": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                    "keywords": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["name", "description", "keywords"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["clusters"],
    "additionalProperties": False,
}

SYSTEM_PROMPT = """\
You group SEO keywords into topical clusters for a content plan. A cluster gathers the \
keywords one page could target: same topic and search intent.
Rules:
- Put every keyword in exactly one cluster.
- Copy each keyword exactly as given (same spelling, case and spacing). Never add, merge, \
translate or correct keywords.
- Name each cluster in 2 to 5 words (Title Case) and describe it in one sentence.
The user message is a JSON array of the keywords. Answer with JSON only."""

KNOWN_NAMES_PROMPT = ("\nClusters that already exist for this site (reuse a name exactly when "
                      "keywords fit it): ")


def response_format() -> dict[str, Any]:
    return {"type": "json_schema",
            "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": RESPONSE_SCHEMA}}


def messages(keywords: Sequence[str], known_names: Sequence[str] = ()) -> list[dict[str, str]]:
    system = SYSTEM_PROMPT
    if known_names:
        system += KNOWN_NAMES_PROMPT + json.dumps(list(known_names), ensure_ascii=False)
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": json.dumps(list(keywords), ensure_ascii=False)},
    ]


class MalformedAnswer(ValueError):
    """The answer is not JSON of the contract's shape (the engine adds where it came from)."""


@dataclass(frozen=True)
class AnswerCluster:
    name: str
    description: str
    keywords: tuple[str, ...]


def parse_answer(content: str | None) -> list[AnswerCluster]:
    if not content or not content.strip():
        raise MalformedAnswer("empty answer")
    try:
        document = json.loads(content)
    except json.JSONDecodeError as error:
        raise MalformedAnswer(f"malformed JSON ({error.msg} at character {error.pos})") from None
    except RecursionError:
        raise MalformedAnswer("JSON nested too deeply") from None
    clusters = document.get("clusters") if isinstance(document, dict) else None
    if not isinstance(clusters, list):
        raise MalformedAnswer('JSON without a "clusters" array')
    parsed = []
    for index, item in enumerate(clusters):
        if not isinstance(item, dict):
            raise MalformedAnswer(f"cluster {index} is not an object")
        name, keywords = item.get("name", ""), item.get("keywords")
        description = item.get("description") or ""
        if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
            raise MalformedAnswer(f'cluster {index} has no "keywords" array of strings')
        if not isinstance(name, str) or not isinstance(description, str):
            raise MalformedAnswer(f"cluster {index} has a name or description that is not text")
        if not printable_text(name) or not printable_text(description):
            raise MalformedAnswer(f"cluster {index} has a name or description with control "
                                  "characters or lone surrogates")
        parsed.append(AnswerCluster(name, description, tuple(keywords)))
    return parsed


def printable_text(text: str) -> bool:
    """Text once its whitespace (newlines included) is folded to spaces: no escape
    sequences, control or format characters, or lone surrogates, which no name may hold."""
    return " ".join(text.split()).replace(" ", "").isprintable()


@dataclass(frozen=True)
class CheckedAnswer:
    """An answer held against what was sent: positions into the sent list, and the rest."""

    clusters: tuple[tuple[str, str, tuple[int, ...]], ...]
    missing: tuple[int, ...]
    invented: tuple[str, ...]
    duplicates: int


def check_answer(answer: Sequence[AnswerCluster], sent: Sequence[str]) -> CheckedAnswer:
    """Each sent keyword in exactly one cluster: the first claim wins, later ones count as
    duplicates; keywords that were not sent are invented; unclaimed ones are missing."""
    position = {text: index for index, text in enumerate(sent)}
    claimed: set[int] = set()
    invented: list[str] = []
    duplicates = 0
    clusters = []
    for cluster in answer:
        members = []
        for text in cluster.keywords:
            index = position.get(text)
            if index is None:
                invented.append(text)
            elif index in claimed:
                duplicates += 1
            else:
                claimed.add(index)
                members.append(index)
        if members:
            clusters.append((cluster.name, cluster.description, tuple(members)))
    missing = tuple(index for index in range(len(sent)) if index not in claimed)
    return CheckedAnswer(tuple(clusters), missing, tuple(invented), duplicates)
