"""Boundary: model answers and the values a run is asked with. The real openai client talks
to a fake server on 127.0.0.1 that answers with hostile content; PostgreSQL and SQLite.
An answer that is not a chat completion of the contract's shape is one line and exit 3,
nothing written; hostile text that is accepted prints escaped; a non-finite or
out-of-range value (flag or settings row) is exit 2 before any request; Ctrl-C during a
request ends the run within a second with exit 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import ROOT, Result
from tests.fake_openai import FakeOpenAI, Reply, completion
from tests.seed import Seeder
from tests.test_cluster import World, make_world

#: A matrix of hostile cases, each on both databases: in the slow set (`pytest -m slow`),
#: which CI runs beside the README's command.
pytestmark = pytest.mark.slow

Cli = Callable[..., Result]
RAW_CONTROL = ("\x1b", "\x07", "\x9b")


@pytest.fixture
def world(db_url: str, seed: Seeder) -> Iterator[World]:
    with FakeOpenAI() as fake:
        yield make_world(db_url, seed, fake)


def content(document: Any) -> Reply:
    return Reply(content=json.dumps(document))


def named(name: str) -> Reply:
    """One cluster holding every keyword, under ``name``."""
    return Reply(answer=lambda keywords: {"clusters": [
        {"name": name, "description": "", "keywords": keywords}]})


def envelope(**changes: Any) -> Reply:
    document = completion('{"clusters": []}') | changes
    return Reply(body=json.dumps(document))


def message(value: Any) -> Reply:
    document = completion("")
    document["choices"][0]["message"]["content"] = value
    return Reply(body=json.dumps(document))


HTML = {"Content-Type": "text/html"}
NESTED = "[" * 100_000 + "]" * 100_000

#: (case, the server's reply, exit code, fragment of stdout (exit 0) or stderr).
ANSWERS: list[tuple[str, Reply, int, str]] = [
    ("an HTML page", Reply(body="<html><body>Welcome</body></html>", headers=HTML), 3,
     "not a chat completion"),
    ("an HTML error page", Reply(status=502, body="<html>Bad gateway</html>", headers=HTML),
     3, "answered 502"),
    ("a truncated envelope", Reply(body='{"id": "x", "choices": [{"index": 0, '), 3,
     "not JSON"),
    ("a deeply nested envelope", Reply(body=NESTED), 3, "not JSON"),
    ("an envelope that is not UTF-8", Reply(raw=b'{"id": "\xff\xfe", "choices": []}'), 3,
     "not UTF-8"),
    ("choices that are not a list", envelope(choices="many"), 3, "not a chat completion"),
    ("no choices", envelope(choices=[]), 3, "no choices"),
    ("content that is not text", message({"clusters": []}), 3, "message is not text"),
    ("truncated JSON content", Reply(content='{"clusters": [{"name": "Seo", '), 3,
     "malformed JSON"),
    ("deeply nested content", Reply(content="[" * 20_000 + "]" * 20_000), 3,
     "nested too deeply"),
    ("huge content", Reply(content=json.dumps({"clusters": [], "pad": "x" * 3_000_000})), 3,
     "characters long"),
    ("content of the wrong shape", content({"clusters": {"Seo": ["seo tools"]}}), 3,
     'without a "clusters" array'),
    ("a cluster that is not an object", content({"clusters": ["Seo"]}), 3, "not an object"),
    ("keywords that are not strings", content({"clusters": [
        {"name": "Seo", "keywords": [1, 2]}]}), 3, '"keywords" array of strings'),
    ("a name with an ANSI escape", named("\x1b[31mSeo\x1b[0m"), 3, "control characters"),
    ("a name with an OSC hyperlink", named("\x1b]8;;https://evil.example\x07Seo"), 3,
     "control characters"),
    ("a name with a C1 control", named("Seo\x9b2J"), 3, "control characters"),
    ("a name with a lone surrogate", Reply(content='{"clusters": [{"name": "Seo\\ud800", '
                                                   '"description": "", "keywords": []}]}'),
     3, "lone surrogates"),
    ("a refusal with escapes", envelope(choices=[{
        "index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": None,
            "refusal": "no\x1b[2J\nway [/] \x1b]0;owned\x07"}}]), 3, "the model refused"),
    ("an error message with escapes", Reply(status=400, body=json.dumps({"error": {
        "message": "bad\x1b[31m\nrequest\x1b]0;t\x07", "type": "invalid_request_error"}})),
     3, "answered 400"),
    ("a name with Rich markup", named("[bold red]Seo[/] [link=https://x]"), 0,
     "[bold red]Seo[/] [link=https://x]"),
    ("a name with newlines", named("Seo\nTools\r\n"), 0, "Seo Tools"),
    ("keywords that were not sent", Reply(answer=lambda _: {"clusters": [
        {"name": "Seo", "description": "", "keywords": ["\x1b[31mnot sent", "[/]x"]}]}), 0,
     '"\\u001b[31mnot sent"'),
]


@pytest.mark.parametrize("reply, code, fragment", [a[1:] for a in ANSWERS],
                         ids=[a[0] for a in ANSWERS])
def test_hostile_answers(cli: Cli, seed: Seeder, world: World, reply: Reply, code: int,
                         fragment: str) -> None:
    before = seed.dump()
    world.fake.push(reply, *[Reply(answer=lambda _: {"clusters": []})] * 2)
    result = world.run(cli, "run", "--tenant", "acme", "--max-retries", "0")
    assert result.code == code, result.stderr
    for text in (result.stdout, result.stderr):
        assert not any(ch in text for ch in RAW_CONTROL), text
    if code:
        assert fragment in result.stderr and "nothing was written" in result.stderr
        assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    else:
        assert fragment in result.stdout
        world.fake.replies.clear()
        world.fake.push(reply, *[Reply(answer=lambda _: {"clusters": []})] * 2)
        document = world.run(cli, "run", "--tenant", "acme", "--format", "json")
        assert document.code == 0 and document.stdout.isascii(), document.stderr
        assert json.loads(document.stdout)["kind"] == "cluster.proposal"
        assert fragment in document.stdout
    assert seed.dump() == before


def settings_config(seed: Seeder, account: int, text: str) -> None:
    """Set a settings row's config to ``text`` verbatim (JSON the tool did not write)."""
    cast = "CAST(:c AS jsonb)" if seed.dialect == "postgresql" else ":c"
    seed.execute(f"UPDATE system_integrationsettings SET config = {cast} "
                 "WHERE account_id = :a", c=text, a=account)


#: (case, the tenant's settings fields as JSON text, or flags; stderr fragment). Neither
#: jsonb nor SQLite's JSON_VALID admits NaN; 1e999 is valid JSON that parses to infinity.
VALUES: list[tuple[str, str | None, list[str], str]] = [
    ("temperature 1e999 (inf)", '"temperature": 1e999', [], "temperature must be a number"),
    ("temperature -1e999 (-inf)", '"temperature": -1e999', [],
     "temperature must be a number"),
    ("temperature as text", '"temperature": "nan"', [], "temperature must be a number"),
    ("temperature out of range", '"temperature": 7', [], "temperature must be a number"),
    ("max_tokens 1e999 (inf)", '"max_tokens": 1e999', [], "max_tokens must be an integer"),
    ("max_tokens fractional", '"max_tokens": 1.5', [], "max_tokens must be an integer"),
    ("max_tokens beyond bigint", '"max_tokens": 9223372036854775808', [],
     "max_tokens must be an integer"),
    ("max_tokens zero", '"max_tokens": 0', [], "max_tokens must be an integer"),
    ("--timeout nan", None, ["--timeout", "nan"], "--timeout must be a finite number"),
    ("--timeout inf", None, ["--timeout", "inf"], "--timeout must be a finite number"),
    ("--wait nan", None, ["--wait", "nan"], "--wait must be a finite number"),
    ("--wait inf", None, ["--wait", "inf"], "--wait must be a finite number"),
    ("--batch-size beyond bigint", None, ["--batch-size", str(2**64)], "--batch-size"),
    ("--concurrency zero", None, ["--concurrency", "0"], "--concurrency"),
    ("--keyword-id beyond bigint", None, ["--keyword-id", str(2**63)], "--keyword-id"),
    ("--site negative", None, ["--site", "-1"], "--site"),
    ("--format junit", None, ["--format", "junit"], "--format junit is not available"),
]


@pytest.mark.parametrize("fields, flags, fragment", [v[1:] for v in VALUES],
                         ids=[v[0] for v in VALUES])
def test_bad_values_are_usage_errors(cli: Cli, seed: Seeder, world: World,
                                     fields: str | None, flags: list[str],
                                     fragment: str) -> None:
    if fields is not None:
        settings_config(seed, world.acme, f'{{"api_key": "sk-x-0123456789", '
                                          f'"base_url": "{world.fake.url}", {fields}}}')
    before = seed.dump()
    result = world.run(cli, "run", "--tenant", "acme", "--apply", "--yes", *flags)
    assert result.code == 2, result.stderr
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert world.fake.requests == []
    assert seed.dump() == before


def test_ctrl_c_during_a_model_request_is_130_within_a_second(world: World) -> None:
    world.fake.push(*[Reply(delay=30)] * 4)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "igny8ctl", "cluster", "run", "--tenant", "acme",
         "--batch-size", "2", "--database-url", world.url],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPENAI")},
        # A shell without job control starts background jobs with SIGINT ignored; an
        # operator's terminal does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        while len(world.fake.requests) < 3:
            assert process.poll() is None and time.monotonic() - started < 20
            time.sleep(0.02)
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=5)
        elapsed = time.monotonic() - interrupted
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert elapsed < 1.0, elapsed
    assert "interrupted" in stderr and "Traceback" not in stderr


def test_existing_names_with_escapes_are_not_offered_to_the_model(
        cli: Cli, seed: Seeder, world: World) -> None:
    seed.cluster(world.acme, world.site, "Seo\x1b]0;owned\x07")
    result = world.run(cli, "run", "--tenant", "acme")
    assert result.code == 0, result.stderr
    assert "owned" not in world.fake.requests[0].system
    assert '"Rank"' in world.fake.requests[0].system
