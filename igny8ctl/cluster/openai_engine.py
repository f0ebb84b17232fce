"""The OpenAI engine: keyword batches to chat completions with structured output.

Chat completions, not the Responses API, because every OpenAI-compatible server (vLLM,
Ollama, LM Studio) speaks it. Retries on 429/5xx/timeouts are the client's own, with its
backoff and ``retry-after`` handling. This is the only module that imports ``openai``, and
it is imported only when this engine runs, so ``igny8ctl --help`` and ``check`` stay fast.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, cast

import openai

from igny8ctl.cluster import contract
from igny8ctl.cluster.base import (
    EngineResult,
    Group,
    Grouping,
    Keyword,
    ModelError,
    Progress,
    SiteKeywords,
    Usage,
)
from igny8ctl.cluster.settings import OpenAISettings
from igny8ctl.errors import ConfigError
from igny8ctl.redact import redact

DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_RETRIES = 3
MAX_BATCH = 150
OUTPUT_TOKENS_PER_KEYWORD = 12
"""Echoing a keyword back costs about 4-6 tokens plus JSON punctuation and cluster names."""
KNOWN_NAMES_LIMIT = 100
NOTHING_WRITTEN = "; nothing was written"


def default_batch_size(max_tokens: int | None) -> int:
    """Keywords per request: each answer repeats every keyword, so it must fit in
    ``max_tokens`` with room to spare; 150 keeps prompt and answer far inside any context."""
    if not max_tokens:
        return MAX_BATCH
    return max(10, min(MAX_BATCH, max_tokens // OUTPUT_TOKENS_PER_KEYWORD))


@dataclass(frozen=True)
class _Task:
    site: int
    batch: int
    batches: int
    keywords: tuple[Keyword, ...]
    known_names: tuple[str, ...]
    follow_up: bool = False

    def where(self) -> str:
        request = f"request {self.batch + 1}/{self.batches}"
        return f"site {self.site}, {'follow-up to ' if self.follow_up else ''}{request}"


@dataclass(frozen=True)
class _Answer:
    task: _Task
    checked: contract.CheckedAnswer
    usage: Usage


class OpenAIEngine:
    name = "openai"

    def __init__(self, settings: OpenAISettings, batch_size: int | None = None,
                 concurrency: int = DEFAULT_CONCURRENCY, timeout_s: float = DEFAULT_TIMEOUT_S,
                 max_retries: int = DEFAULT_MAX_RETRIES) -> None:
        if concurrency < 1 or (batch_size is not None and batch_size < 1):
            raise ConfigError("--batch-size and --concurrency must be at least 1")
        self.settings = settings
        self.batch_size = batch_size or default_batch_size(settings.max_tokens)
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries

    def cluster(self, sites: Sequence[SiteKeywords], progress: Progress) -> EngineResult:
        tasks: deque[_Task] = deque()
        for site in sites:
            known = tuple(site.existing_names[:KNOWN_NAMES_LIMIT])
            ordered = sorted(site.keywords, key=lambda k: (k.text.casefold(), k.id))
            batches = -(-len(ordered) // self.batch_size)
            tasks.extend(
                _Task(site.site_id, index, batches,
                      tuple(ordered[index * self.batch_size:(index + 1) * self.batch_size]), known)
                for index in range(batches))
        progress.planned(len(tasks))
        answers: list[_Answer] = []
        with self._client() as client:
            pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="igny8ctl-openai")
            running: set[Future[_Answer]] = set()
            try:
                while tasks or running:
                    while tasks and len(running) < self.concurrency:
                        running.add(pool.submit(self._ask, client, tasks.popleft()))
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        running.discard(future)
                        answer = future.result()
                        progress.done()
                        answers.append(answer)
                        follow_up = self._follow_up(answer)
                        if follow_up is not None:
                            tasks.append(follow_up)
                            progress.planned(1)
            finally:
                pool.shutdown(wait=not running, cancel_futures=True)
        return _collect(sites, answers)

    def _client(self) -> openai.OpenAI:
        # base_url is always explicit so OPENAI_BASE_URL cannot redirect a tenant's key.
        return openai.OpenAI(
            api_key=self.settings.api_key, base_url=self.settings.base_url,
            max_retries=self.max_retries,
            timeout=openai.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s)),
        )

    def _follow_up(self, answer: _Answer) -> _Task | None:
        """Keywords the model left out get one more request, with the names it just used."""
        task, checked = answer.task, answer.checked
        if task.follow_up or not checked.missing:
            return None
        names = tuple(dict.fromkeys(name for name, _, _ in checked.clusters if name.strip()))
        return _Task(task.site, task.batch, task.batches,
                     tuple(task.keywords[i] for i in checked.missing),
                     (names + task.known_names)[:KNOWN_NAMES_LIMIT], follow_up=True)

    def _ask(self, client: openai.OpenAI, task: _Task) -> _Answer:
        texts = [keyword.text for keyword in task.keywords]
        settings = self.settings
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=settings.model,
                messages=cast(Any, contract.messages(texts, task.known_names)),
                response_format=cast(Any, contract.response_format()),
                temperature=openai.omit if settings.temperature is None else settings.temperature,
                max_tokens=openai.omit if settings.max_tokens is None else settings.max_tokens,
            )
            completion = raw.parse()
        except openai.APIError as error:
            raise self._api_error(task, error) from None
        choice = completion.choices[0] if completion.choices else None
        if choice is None:
            raise ModelError(f"{task.where()}: the answer has no choices{NOTHING_WRITTEN}")
        if choice.finish_reason == "length":
            raise ModelError(
                f"{task.where()}: the answer was truncated (finish_reason=length) at "
                f"max_tokens={self.settings.max_tokens}: lower --batch-size (now "
                f"{self.batch_size}) or raise max_tokens{NOTHING_WRITTEN}")
        if choice.message.refusal:
            raise ModelError(f"{task.where()}: the model refused: "
                             f"{self._clean(choice.message.refusal)}{NOTHING_WRITTEN}")
        try:
            answer = contract.parse_answer(choice.message.content)
        except contract.MalformedAnswer as error:
            raise ModelError(f"{task.where()}: {error}{NOTHING_WRITTEN}") from None
        usage = completion.usage
        return _Answer(task, contract.check_answer(answer, texts), Usage(
            requests=1, retries=raw.retries_taken,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0))

    def _api_error(self, task: _Task, error: openai.APIError) -> Exception:
        server = self.settings.base_url
        retried = f" after {self.max_retries} retries" if self.max_retries else ""
        if isinstance(error, openai.APITimeoutError):
            return ModelError(f"{task.where()}: no answer from {server} within "
                              f"{self.timeout_s:g}s{retried}{NOTHING_WRITTEN}")
        if isinstance(error, openai.APIConnectionError):
            return ModelError(f"{task.where()}: cannot reach {server}{retried}{NOTHING_WRITTEN}")
        if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
            return ConfigError(f"{server} rejected the API key ({error.status_code}) from "
                               f"{self.settings.source}{NOTHING_WRITTEN}")
        if isinstance(error, openai.APIStatusError):
            transient = error.status_code in (408, 409, 429) or error.status_code >= 500
            return ModelError(
                f"{task.where()}: {server} answered {error.status_code} "
                f"({self._clean(error.message)}){retried if transient else ''}{NOTHING_WRITTEN}")
        return ModelError(f"{task.where()}: {self._clean(str(error))}{NOTHING_WRITTEN}")

    def _clean(self, text: str) -> str:
        return redact(" ".join(text.split())[:300], [self.settings.api_key])


def _collect(sites: Sequence[SiteKeywords], answers: list[_Answer]) -> EngineResult:
    """Per site, the groups of every answer in request order (deterministic whatever order
    they completed in); keywords still missing after their follow-up stay unclustered."""
    answers.sort(key=lambda a: (a.task.site, a.task.batch, a.task.follow_up))
    usage = Usage()
    by_site: dict[int, list[_Answer]] = {}
    for answer in answers:
        usage += answer.usage
        by_site.setdefault(answer.task.site, []).append(answer)
    groupings = []
    for site in sites:
        groups: list[Group] = []
        unclustered: list[int] = []
        invented: list[str] = []
        duplicates = 0
        for answer in by_site.get(site.site_id, []):
            keywords, checked = answer.task.keywords, answer.checked
            groups += [Group(name, description, tuple(keywords[i].id for i in members))
                       for name, description, members in checked.clusters]
            if answer.task.follow_up:
                unclustered += [keywords[i].id for i in checked.missing]
            invented += checked.invented
            duplicates += checked.duplicates
        groupings.append(Grouping(site.site_id, tuple(groups), tuple(sorted(unclustered)),
                                  tuple(invented), duplicates))
    return EngineResult(tuple(groupings), usage)
