"""The OpenAI engine: keyword batches to chat completions with structured output.

Chat completions, not the Responses API, because every OpenAI-compatible server (vLLM,
Ollama, LM Studio) speaks it. Retries on 429/5xx/timeouts are the client's own, with its
backoff and ``retry-after`` handling. Batches are read from the database ahead of the
requests, at most ``2 x concurrency`` held at once, and handed back in order. Requests
run on daemon threads: Ctrl-C ends the run at once, never waiting for a stalled server.
An answer is untrusted: anything but a chat completion of the contract's shape is a model
error (exit 3). This is the only module that imports ``openai``, and it is imported only
when this engine runs, so ``igny8ctl --help`` and ``check`` stay fast.
"""

from __future__ import annotations

import math
import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletion

from igny8ctl.cluster import contract
from igny8ctl.cluster.base import Batch, BatchAnswer, Group, Keyword, ModelError, Progress, Usage
from igny8ctl.cluster.settings import OpenAISettings
from igny8ctl.errors import ConfigError
from igny8ctl.redact import mask_url, redact

DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_RETRIES = 3
MAX_BATCH = 150
OUTPUT_TOKENS_PER_KEYWORD = 12
"""Echoing a keyword back costs about 4-6 tokens plus JSON punctuation and cluster names."""
KNOWN_NAMES_LIMIT = 100
NOTHING_WRITTEN = "; nothing was written"
ANSWER_CHARS_PER_KEYWORD = 1000
"""An answer longer than this per keyword sent (beyond a margin) is not worth parsing."""
ANSWER_MARGIN_CHARS = 65536
POLL_S = 0.2


def default_batch_size(max_tokens: int | None) -> int:
    """Keywords per request: each answer repeats every keyword, so it must fit in
    ``max_tokens`` with room to spare; 150 keeps prompt and answer far inside any context."""
    if not max_tokens:
        return MAX_BATCH
    return max(10, min(MAX_BATCH, max_tokens // OUTPUT_TOKENS_PER_KEYWORD))


@dataclass(frozen=True)
class _Task:
    batch: Batch
    keywords: tuple[Keyword, ...]
    known_names: tuple[str, ...]
    follow_up: bool = False

    @property
    def key(self) -> tuple[int, int]:
        return self.batch.site_id, self.batch.index

    def where(self) -> str:
        request = f"request {self.batch.index + 1}"
        return f"site {self.batch.site_id}, {'follow-up to ' if self.follow_up else ''}{request}"


@dataclass(frozen=True)
class _Answer:
    task: _Task
    checked: contract.CheckedAnswer
    usage: Usage

    def groups(self) -> list[Group]:
        keywords = self.task.keywords
        return [Group(name, description, tuple(keywords[i].id for i in members))
                for name, description, members in self.checked.clusters]


@dataclass
class _Open:
    """A batch sent and not yet handed back: its answer, and its follow-up's if one is due."""

    batch: Batch
    answers: list[_Answer] = field(default_factory=list)
    follow_up_due: bool = False

    @property
    def complete(self) -> bool:
        return bool(self.answers) and not self.follow_up_due

    def answer(self) -> BatchAnswer:
        """Groups of the answer, then of its follow-up; what the follow-up still left out
        stays unclustered."""
        last = self.answers[-1]
        usage = Usage()
        for answer in self.answers:
            usage += answer.usage
        return BatchAnswer(
            self.batch, tuple(g for a in self.answers for g in a.groups()),
            tuple(sorted(last.task.keywords[i].id for i in last.checked.missing)),
            tuple(t for a in self.answers for t in a.checked.invented),
            sum(a.checked.duplicates for a in self.answers), usage)


_Done = tuple[_Task, "_Answer | BaseException"]


def _first_task(batch: Batch) -> _Task:
    ordered = tuple(sorted(batch.keywords, key=lambda k: (k.text.casefold(), k.id)))
    return _Task(batch, ordered, batch.known_names)


def _next(done: queue.SimpleQueue[_Done]) -> _Done:
    """The next finished request; polls so that Ctrl-C is seen at once."""
    while True:
        try:
            return done.get(timeout=POLL_S)
        except queue.Empty:
            continue


class OpenAIEngine:
    name = "openai"

    def __init__(self, settings: OpenAISettings, batch_size: int | None = None,
                 concurrency: int = DEFAULT_CONCURRENCY, timeout_s: float = DEFAULT_TIMEOUT_S,
                 max_retries: int = DEFAULT_MAX_RETRIES) -> None:
        if concurrency < 1 or (batch_size is not None and batch_size < 1):
            raise ConfigError("--batch-size and --concurrency must be at least 1",
                              key="--batch-size")
        if not math.isfinite(timeout_s) or timeout_s <= 0:
            raise ConfigError(f"--timeout must be a finite number of seconds, got {timeout_s}",
                              key="--timeout")
        self.settings = settings
        self.batch_size: int | None = batch_size or default_batch_size(settings.max_tokens)
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries

    def cluster(self, batches: Iterable[Batch], progress: Progress) -> Iterator[BatchAnswer]:
        client = self._client()
        work: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        done: queue.SimpleQueue[_Done] = queue.SimpleQueue()
        workers = [threading.Thread(target=self._work, args=(client, work, done), daemon=True,
                                    name=f"igny8ctl-openai-{n}")
                   for n in range(self.concurrency)]
        for worker in workers:
            worker.start()
        source = iter(batches)
        held: dict[tuple[int, int], _Open] = {}
        order: deque[tuple[int, int]] = deque()
        waiting: deque[_Task] = deque()
        running, exhausted = 0, False
        try:
            while True:
                while waiting and running < self.concurrency:
                    work.put(waiting.popleft())
                    running += 1
                while order and held[order[0]].complete:
                    yield held.pop(order.popleft()).answer()
                if exhausted and not order:
                    return
                if not exhausted and len(order) < 2 * self.concurrency:
                    # Read ahead while requests are in flight: a freed slot never waits
                    # for the database.
                    batch = next(source, None)
                    exhausted = batch is None
                    if batch is not None:
                        task = _first_task(batch)
                        order.append(task.key)
                        held[task.key] = _Open(batch)
                        waiting.append(task)
                    continue
                task, outcome = _next(done)
                running -= 1
                if isinstance(outcome, BaseException):
                    raise outcome
                progress.done()
                state = held[task.key]
                state.answers.append(outcome)
                follow_up = self._follow_up(outcome)
                state.follow_up_due = follow_up is not None
                if follow_up is not None:
                    waiting.appendleft(follow_up)
                    progress.planned(1)
        finally:
            for _ in workers:
                work.put(None)
            if not running:
                client.close()

    def _work(self, client: openai.OpenAI, work: queue.SimpleQueue[_Task | None],
              done: queue.SimpleQueue[_Done]) -> None:
        while (task := work.get()) is not None:
            try:
                done.put((task, self._ask(client, task)))
            except BaseException as error:
                done.put((task, error))

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
        return _Task(task.batch, tuple(task.keywords[i] for i in checked.missing),
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
            completion: object = raw.parse()
        except openai.APIError as error:
            raise self._api_error(task, error) from None
        except (ValueError, RecursionError):
            raise ModelError(f"{task.where()}: the answer is not JSON (or not UTF-8)"
                             f"{NOTHING_WRITTEN}") from None
        finish_reason, refusal, content, tokens = self._read(task, completion)
        if finish_reason == "length":
            raise ModelError(
                f"{task.where()}: the answer was truncated (finish_reason=length) at "
                f"max_tokens={self.settings.max_tokens}: lower --batch-size (now "
                f"{self.batch_size}) or raise max_tokens{NOTHING_WRITTEN}")
        if refusal:
            raise ModelError(f"{task.where()}: the model refused: "
                             f"{self._clean(refusal)}{NOTHING_WRITTEN}")
        if content is not None and len(content) > \
                ANSWER_MARGIN_CHARS + ANSWER_CHARS_PER_KEYWORD * len(texts):
            raise ModelError(f"{task.where()}: the answer is {len(content):,} characters long "
                             f"for {len(texts)} keywords{NOTHING_WRITTEN}")
        try:
            answer = contract.parse_answer(content)
        except contract.MalformedAnswer as error:
            raise ModelError(f"{task.where()}: {error}{NOTHING_WRITTEN}") from None
        return _Answer(task, contract.check_answer(answer, texts), Usage(
            requests=1, retries=int(raw.retries_taken), prompt_tokens=tokens[0],
            completion_tokens=tokens[1]))

    def _read(self, task: _Task, completion: object
              ) -> tuple[object, str | None, str | None, tuple[int, int]]:
        """finish_reason, refusal, content and token counts, if ``completion`` has the shape
        of a chat completion (the client does not validate it); else a model error."""
        choices = getattr(completion, "choices", None)
        if not isinstance(completion, ChatCompletion) or not isinstance(choices, list):
            raise ModelError(f"{task.where()}: the answer is not a chat completion"
                             f"{NOTHING_WRITTEN}")
        if not choices:
            raise ModelError(f"{task.where()}: the answer has no choices{NOTHING_WRITTEN}")
        message = getattr(choices[0], "message", None)
        refusal, content = getattr(message, "refusal", None), getattr(message, "content", None)
        if not isinstance(refusal, str | None) or not isinstance(content, str | None):
            raise ModelError(f"{task.where()}: the answer's message is not text"
                             f"{NOTHING_WRITTEN}")
        usage = getattr(completion, "usage", None)
        counts = [getattr(usage, name, 0) for name in ("prompt_tokens", "completion_tokens")]
        prompt, answered = (c if isinstance(c, int) and not isinstance(c, bool)
                            and 0 <= c < 2**62 else 0 for c in counts)
        return getattr(choices[0], "finish_reason", None), refusal, content, (prompt, answered)

    def _api_error(self, task: _Task, error: openai.APIError) -> Exception:
        server = mask_url(self.settings.base_url)
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
