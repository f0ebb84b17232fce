"""Boundary: a saved fix plan is untrusted input. Every edited, malformed or foreign plan is
one line, exit 2, and nothing is written (PostgreSQL and SQLite)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from igny8ctl import api
from igny8ctl.config import Settings
from igny8ctl.db import create_engine
from igny8ctl.demo import create_demo_database
from igny8ctl.fixes.runner import target_fingerprint
from tests.conftest import Result
from tests.seed import Seeder
from tests.test_fixes import CREATE, data

#: A matrix of hostile cases, each on both databases: in the slow set (`pytest -m slow`),
#: which CI runs beside the README's command.
pytestmark = pytest.mark.slow

Document = dict[str, Any]
Context = dict[str, int]


def refingerprint(document: Document) -> None:
    document["fingerprint"] = target_fingerprint([i for i, _ in document["targets"]],
                                                 [d for _, d in document["targets"]])


def _set(path: str, value: Any) -> Callable[[Document, Context], None]:
    def mutate(document: Document, _: Context) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


def _duplicate_target(document: Document, _: Context) -> None:
    document["targets"].insert(1, document["targets"][0])
    document["target_count"] += 1
    refingerprint(document)


def _beyond_bigint(document: Document, _: Context) -> None:
    document["targets"][-1][0] = 2**63
    refingerprint(document)


def _drop_account(document: Document, _: Context) -> None:
    document["accounts"].pop()


def _account_for_stranger(document: Document, context: Context) -> None:
    document["accounts"][0]["owner_id"] = context["owner"]


def _same_slug(document: Document, _: Context) -> None:
    document["accounts"][1]["slug"] = document["accounts"][0]["slug"]


def _foreign_join(document: Document, context: Context) -> None:
    document["joins"][0][1] = context["acme"]


def _not_a_target(document: Document, context: Context) -> None:
    """The tenant owner swapped in for an orphan, with its real digest: well formed, but
    not a target of the fix."""
    orphan = document["targets"][0][0]
    document["targets"][0] = [context["owner"], context["owner_digest"]]
    document["targets"].sort()
    for account in document["accounts"]:
        if account["owner_id"] == orphan:
            account["owner_id"] = context["owner"]
    refingerprint(document)


CASES: list[tuple[str, Callable[[Document, Context], None] | bytes, str]] = [
    ("not JSON", b"{\"kind\": ", "not JSON"),
    ("deeply nested", b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    ("another kind", _set("kind", "cluster.plan"), "is not a fix.plan"),
    ("a future version", _set("schema_version", 99), "schema_version"),
    ("unknown fix", _set("fix", "drop-everything"), "unknown fix"),
    ("unknown top-level key", _set("sql", "DROP TABLE x"), "sql"),
    ("unknown parameter", _set("params.stratgy", "delete"), "stratgy"),
    ("misspelt strategy", _set("params.strategy", "create-acount"), "create-acount"),
    ("role that is none", _set("params.role", "root"), "root"),
    ("--set of a column the fix sets", _set("params.set", {"owner_id": "1"}), "owner_id"),
    ("plan slug with SQL", _set("params.plan", "free'; DROP TABLE x; --"), "not a slug"),
    ("id as a string", _set("targets.0.0", "1"), "targets"),
    ("negative id", _set("targets.0.0", -1), "targets"),
    ("id beyond bigint", _beyond_bigint, "targets"),
    ("duplicate target", _duplicate_target, "distinct"),
    ("digest that is not one", _set("targets.0.1", "zz"), "targets"),
    ("edited fingerprint", _set("fingerprint", "0" * 64), "fingerprint"),
    ("wrong target count", _set("target_count", 99), "target_count"),
    ("target count as a float", _set("target_count", 2.0), "target_count"),
    ("target count as a string", _set("target_count", "2"), "target_count"),
    ("another table", _set("table", "igny8_core_auth_account"), "repairs"),
    ("a target without its account", _drop_account, "exactly one account"),
    ("an account for a non-target", _account_for_stranger, "exactly one account"),
    ("two accounts, one slug", _same_slug, "share a slug"),
    ("slug that is not a slug", _set("accounts.0.slug", "a b"), "slug"),
    ("joining someone else's account", _foreign_join, "not targets"),
    ("an id that is not a target", _not_a_target, "not targets"),
    ("a blocked plan", _set("blockers", ["x"]), "blocked"),
]


@pytest.fixture
def saved(seed: Seeder, db_url: str, tmp_path: Path) -> tuple[Document, Context]:
    plan_id = seed.plan("free")
    acme = seed.account("acme", plan=plan_id)
    owner = seed.user("maya", acme, role="owner")
    for name in ("orphan.one", "orphan.two"):
        seed.user(name)
    joiner = seed.user("joiner")
    seed.account("joiners-own", owner=joiner)
    settings = Settings(database_url=db_url)
    plan = api.plan_fix(settings, "orphaned-users", CREATE)
    document = json.loads(api.fix_plan_text(plan))
    assert len(document["accounts"]) == 2 and len(document["joins"]) == 1
    engine = create_engine(settings)
    with engine.connect() as connection:
        fix = api._make_fix("orphaned-users", connection, settings, CREATE)
        digest = connection.scalar(sa.select(fix.schema.dialect.digest(fix.watched()))
                                   .where(fix.root.c.id == owner))
    return document, {"owner": owner, "acme": acme, "owner_digest": digest}


@pytest.mark.parametrize("case, edit, fragment", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_plan_is_refused_and_nothing_is_written(
        case: str, edit: Callable[[Document, Context], None] | bytes, fragment: str,
        saved: tuple[Document, Context], seed: Seeder, db_url: str, tmp_path: Path,
        cli: Callable[..., Result]) -> None:
    document, context = saved
    path = tmp_path / "edited.plan.json"
    if isinstance(edit, bytes):
        path.write_bytes(edit)
    else:
        edit(document, context)
        path.write_text(json.dumps(document))
    before = data(seed)
    result = cli("fix", "apply", str(path), "--yes", "--database-url", db_url)
    assert result.code == 2, (case, result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("igny8ctl: error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert data(seed) == before, "nothing was written"


#: Well formed, ids all targets, but what it would write is not what the fix writes now:
#: refused, exit 1, nothing written.
EDITED_WRITES: list[tuple[str, Callable[[Document, Context], None]]] = [
    ("account name with an ANSI escape", _set("accounts.0.name", "\x1b[31mowned\x1b[0m")),
    ("account name with a right-to-left override", _set("accounts.0.name", "gro\u202eevil")),
    ("empty account name", _set("accounts.0.name", "")),
    ("account name with a NUL", _set("accounts.0.name", "own\u0000ed")),
    ("account name longer than its column", _set("accounts.0.name", "n" * 200)),
    ("slug longer than its column", _set("accounts.0.slug", "s" * 60)),
    ("another free slug", _set("accounts.0.slug", "chosen-by-the-editor")),
]


@pytest.mark.parametrize("case, edit", EDITED_WRITES, ids=[c[0] for c in EDITED_WRITES])
def test_a_plan_whose_writes_were_edited_is_refused(
        case: str, edit: Callable[[Document, Context], None], saved: tuple[Document, Context],
        seed: Seeder, db_url: str, tmp_path: Path, cli: Callable[..., Result]) -> None:
    document, context = saved
    edit(document, context)
    path = tmp_path / "edited.plan.json"
    path.write_text(json.dumps(document))
    before = data(seed)
    result = cli("fix", "apply", str(path), "--yes", "--database-url", db_url)
    assert result.code == 1, (case, result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not the ones orphaned-users would make now" in lines[0], lines
    assert data(seed) == before, "nothing was written"


def test_the_preview_is_recomputed_never_the_files_own_words(
        saved: tuple[Document, Context], seed: Seeder, db_url: str, tmp_path: Path,
        cli: Callable[..., Result]) -> None:
    document, _ = saved
    for change in document["changes"]:
        change["description"] = "harmless: nothing is deleted"
    document["notes"] = ["reviewed by the DBA: safe"]
    path = tmp_path / "lying.plan.json"
    path.write_text(json.dumps(document))
    result = cli("fix", "apply", str(path), "--yes", "--database-url", db_url)
    assert result.code == 0, result
    assert "harmless" not in result.stdout and "reviewed by the DBA" not in result.stdout
    assert "parameters: strategy=create-account" in result.stdout


@pytest.mark.parametrize("command", [("fix", "apply"), ("cluster", "apply")],
                         ids=lambda command: " ".join(command))
@pytest.mark.parametrize("kind", ["a FIFO without a writer", "/dev/zero", "/dev/null",
                                  "a directory"])
def test_only_a_regular_file_is_read_as_a_plan(command: tuple[str, str], kind: str,
                                               tmp_path: Path, cli: Callable[..., Result]
                                               ) -> None:
    demo = create_demo_database(tmp_path / "demo.sqlite3")
    target = Path(kind) if kind.startswith("/") else tmp_path / "plan"
    if kind == "a FIFO without a writer":
        os.mkfifo(target)
    elif kind == "a directory":
        target.mkdir()
    started = time.monotonic()
    result = cli(*command, str(target), "--yes", "--database-url", f"sqlite:///{demo}")
    assert time.monotonic() - started < 10, "neither blocks nor reads forever"
    assert result.code == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and ("not a plan" in lines[0] or "is a directory" in lines[0]), lines


def test_a_planned_slug_taken_since_is_a_change_not_a_usage_error(
        saved: tuple[Document, Context], seed: Seeder, db_url: str, tmp_path: Path,
        cli: Callable[..., Result]) -> None:
    document, _ = saved
    path = tmp_path / "orphans.plan.json"
    path.write_text(json.dumps(document))
    seed.account(document["accounts"][0]["slug"])  # the app, meanwhile
    before = data(seed)
    result = cli("fix", "apply", str(path), "--yes", "--database-url", db_url)
    assert result.code == 1, result
    assert "changed since it was made" in result.stderr and "make a new plan" in result.stderr
    assert data(seed) == before
