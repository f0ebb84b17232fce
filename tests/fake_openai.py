"""A scriptable OpenAI-compatible HTTP server on 127.0.0.1, for driving the real client.

Scripted replies (status, headers, delay, raw or computed content) are consumed in order;
when none is queued, the server answers like a well-behaved model: every keyword it was
sent, grouped by ``topic`` (by default the keyword's first word). Every request is
recorded. Run as ``python -m tests.fake_openai --delay-ms 300`` for the benchmark: it
prints its base URL and serves until killed (``GET /stats`` returns the request count).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Topic = Callable[[str], str]
Answer = Callable[[list[str]], dict[str, Any]]


def first_word(keyword: str) -> str:
    return keyword.split()[0].title()


@dataclass
class Reply:
    """One scripted reply: an HTTP error, raw text, or a completion whose content is given.

    ``content`` None with status 200 means: answer with ``answer`` (or the default grouping).
    ``body`` (text) or ``raw`` (bytes, any bytes) replace the whole HTTP body; a
    ``Content-Type`` in ``headers`` replaces the JSON one.
    """

    status: int = 200
    content: str | None = None
    answer: Answer | None = None
    finish_reason: str = "stop"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    raw: bytes | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def keywords(self) -> list[str]:
        """The keywords the client sent: the last user message, a JSON array of strings."""
        users = [m["content"] for m in self.body["messages"] if m["role"] == "user"]
        return list(json.loads(users[-1]))

    @property
    def system(self) -> str:
        return str(self.body["messages"][0]["content"])


def completion(content: str, finish_reason: str = "stop", prompt_tokens: int = 0,
               model: str = "fake-model") -> dict[str, Any]:
    completion_tokens = max(1, len(content) // 4)
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish_reason, "logprobs": None,
                     "message": {"role": "assistant", "content": content, "refusal": None}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def grouped(keywords: list[str], topic: Topic = first_word) -> dict[str, Any]:
    clusters: dict[str, list[str]] = {}
    for keyword in keywords:
        clusters.setdefault(topic(keyword), []).append(keyword)
    return {"clusters": [{"name": name, "description": f"About {name.lower()}",
                          "keywords": members} for name, members in clusters.items()]}


class FakeOpenAI:
    """The server; use as a context manager or ``start``/``stop``."""

    def __init__(self, delay: float = 0.0, topic: Topic = first_word) -> None:
        self.delay = delay
        self.topic = topic
        self.replies: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,),
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def respond(self, path: str, headers: dict[str, str],
                raw: bytes) -> tuple[int, dict[str, str], bytes, float]:
        body = json.loads(raw or b"{}")
        with self._lock:
            self.requests.append(Recorded(path, headers, body))
            reply = self.replies.popleft() if self.replies else Reply()
        delay = reply.delay or self.delay
        if reply.raw is not None:
            return reply.status, reply.headers, reply.raw, delay
        if reply.status != 200 or reply.body is not None:
            text = reply.body if reply.body is not None else json.dumps(
                {"error": {"message": f"fake error {reply.status}", "type": "server_error",
                           "code": None, "param": None}})
            return reply.status, reply.headers, text.encode(), delay
        keywords = Recorded(path, headers, body).keywords
        content = reply.content
        if content is None:
            answer = reply.answer(keywords) if reply.answer else grouped(keywords, self.topic)
            content = json.dumps(answer)
        document = completion(content, reply.finish_reason, prompt_tokens=len(raw) // 4,
                              model=body.get("model", "fake-model"))
        return 200, reply.headers, json.dumps(document).encode(), delay


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers, payload, delay = fake.respond(
                self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
            if delay:
                time.sleep(delay)
            self._send(status, headers, payload)

        def do_GET(self) -> None:
            self._send(200, {}, json.dumps({"requests": len(fake.requests)}).encode())

        def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            try:
                self.send_response(status)
                if not any(name.lower() == "content-type" for name in headers):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (timeout tests)

        def log_message(self, *_: Any) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    with FakeOpenAI(delay=args.delay_ms / 1000) as fake:
        print(fake.url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
