"""Boundary: cluster plan files. A plan is untrusted input: every edit below is refused
before anything is written, on PostgreSQL and SQLite; a usage error (exit 2) when the plan
names what is not the tenant's or not what was selected, a refusal (exit 1) when the
fingerprinted keywords changed since."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from tests.conftest import Result
from tests.fake_openai import FakeOpenAI
from tests.seed import Seeder
from tests.test_cluster import World, make_world

#: A matrix of hostile cases, each on both databases: in the slow set (`pytest -m slow`),
#: which CI runs beside the README's command.
pytestmark = pytest.mark.slow

Cli = Callable[..., Result]
Plan = dict[str, Any]
Edit = Callable[[Plan, World, Seeder], Any]
BIGINT = 2**63 - 1


@pytest.fixture
def world(db_url: str, seed: Seeder) -> Iterator[World]:
    with FakeOpenAI() as fake:
        yield make_world(db_url, seed, fake)


def site(plan: Plan) -> dict[str, Any]:
    return cast(dict[str, Any], plan["sites"][0])


def first(plan: Plan) -> dict[str, Any]:
    return cast(dict[str, Any], plan["sites"][0]["clusters"][0])


def add_keyword(plan: Plan, keyword_id: Any) -> None:
    first(plan)["keyword_ids"].append(keyword_id)
    site(plan)["keyword_ids"].append(keyword_id)


def move_site(plan: Plan, world: World, seed: Seeder) -> None:
    site(plan)["site_id"] = seed.site(world.acme, "Shop")


def swap_tenant(plan: Plan, world: World, _: Seeder) -> None:
    plan["tenant"] = {"id": world.other, "slug": "other"}


def foreign_cluster(plan: Plan, world: World, seed: Seeder) -> None:
    first(plan)["existing_id"] = seed.cluster(world.other, world.other_site, "Theirs")


def own_keyword_of_another_site(plan: Plan, world: World, seed: Seeder) -> None:
    add_keyword(plan, seed.keyword(world.acme, seed.site(world.acme, "Shop"), "seo shop"))


def twice(plan: Plan, *_: Any) -> None:
    plan["sites"][0]["clusters"][1]["keyword_ids"].append(first(plan)["keyword_ids"][0])


def rename_keyword(_: Plan, world: World, seed: Seeder) -> None:
    seed.execute("UPDATE planner_keywords SET keyword = 'seo tool' WHERE id = :i",
                 i=world.keywords["seo tools"])


def set_field(*path: Any, value: Any) -> Edit:
    def edit(plan: Plan, *_: Any) -> None:
        target: Any = plan
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return edit


def delete_field(*path: Any) -> Edit:
    def edit(plan: Plan, *_: Any) -> None:
        target: Any = plan
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]
    return edit


CLUSTER = ("sites", 0, "clusters", 0)

#: (case, edit of the saved plan (or of the database), exit code, stderr fragment).
CASES: list[tuple[str, Edit, int, str]] = [
    ("site of another tenant", lambda p, w, _: site(p).update(site_id=w.other_site), 2,
     "is not a site of tenant acme"),
    ("another site of the tenant", move_site, 2, "are not keywords of site"),
    ("site that does not exist", set_field("sites", 0, "site_id", value=987654321), 2,
     "is not a site of tenant acme"),
    ("site twice", lambda p, *_: p["sites"].append(p["sites"][0]), 2, "a site appears twice"),
    ("tenant swapped for another", swap_tenant, 2, "is not a site of tenant other"),
    ("keyword of another tenant", lambda p, w, _: add_keyword(p, w.other_keyword), 2,
     "are not keywords of site"),
    ("keyword of another site of the tenant", own_keyword_of_another_site, 2,
     "are not keywords of site"),
    ("keyword placed but not selected",
     lambda p, w, _: first(p)["keyword_ids"].append(w.other_keyword), 2, "not selected"),
    ("keyword in two clusters", twice, 2, "exactly once"),
    ("keyword selected twice",
     lambda p, *_: site(p)["keyword_ids"].append(site(p)["keyword_ids"][0]), 2,
     "selects a keyword twice"),
    ("keyword id beyond bigint", lambda p, *_: add_keyword(p, BIGINT + 1), 2, "keyword_ids"),
    ("keyword id zero", lambda p, *_: add_keyword(p, 0), 2, "keyword_ids"),
    ("keyword id negative", lambda p, *_: add_keyword(p, -5), 2, "keyword_ids"),
    ("keyword id as text", lambda p, *_: add_keyword(p, "7"), 2, "keyword_ids"),
    ("keyword id as float", lambda p, *_: add_keyword(p, 7.0), 2, "keyword_ids"),
    ("keyword id as bool", lambda p, *_: add_keyword(p, True), 2, "keyword_ids"),
    ("cluster of another tenant", foreign_cluster, 2, "are not clusters of site"),
    ("existing id beyond bigint", set_field(*CLUSTER, "existing_id", value=BIGINT + 1), 2,
     "existing_id"),
    ("name too long", set_field(*CLUSTER, "name", value="n" * 256), 2, "name"),
    ("name empty", set_field(*CLUSTER, "name", value=""), 2, "name"),
    ("name of spaces", set_field(*CLUSTER, "name", value="   "), 2, "name"),
    ("name with an ANSI escape", set_field(*CLUSTER, "name", value="Seo\x1b[31m"), 2,
     "control characters"),
    ("name with a lone surrogate", set_field(*CLUSTER, "name", value="Seo\ud800"), 2,
     "clusters.0.name"),
    ("name not text", set_field(*CLUSTER, "name", value=["Seo"]), 2, "name"),
    ("names repeated", lambda p, *_: p["sites"][0]["clusters"][1].update(
        name=first(p)["name"]), 2, "repeats a cluster name"),
    ("unknown field in a cluster", set_field(*CLUSTER, "site_id", value=1), 2,
     "Extra inputs"),
    ("unknown field at the top", set_field("apply_to", value="everyone"), 2, "Extra inputs"),
    ("missing field", delete_field("sites", 0, "fingerprint"), 2, "fingerprint"),
    ("no sites", set_field("sites", value=[]), 2, "sites"),
    ("fingerprint not a digest", set_field("sites", 0, "fingerprint", value="x"), 2,
     "fingerprint"),
    ("elapsed not finite", set_field("elapsed_s", value=float("nan")), 2, "elapsed_s"),
    ("another kind", set_field("kind", value="fix.plan"), 2, "is not a cluster.plan file"),
    ("another schema version", set_field("schema_version", value=1), 2, "schema_version"),
    ("fingerprint of other keywords", set_field("sites", 0, "fingerprint", value="0" * 64), 1,
     "changed since the proposal was made"),
    ("keywords changed since", rename_keyword, 1, "changed since the proposal was made"),
    ("a keyword deleted since", lambda _, w, seed: seed.execute(
        "DELETE FROM planner_keywords WHERE id = :i", i=w.keywords["seo audit"]), 1,
     "changed since the proposal was made"),
]


@pytest.mark.parametrize("edit, code, fragment", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_hostile_plans_write_nothing(cli: Cli, seed: Seeder, world: World, tmp_path: Path,
                                     edit: Edit, code: int, fragment: str) -> None:
    path = tmp_path / "plan.json"
    saved = world.run(cli, "run", "--tenant", "acme", "--save-plan", str(path))
    assert saved.code == 0, saved.stderr
    plan = json.loads(path.read_text())
    edit(plan, world, seed)
    path.write_text(json.dumps(plan))
    before = seed.dump()
    result = world.run(cli, "apply", str(path), "--yes")
    assert (result.code, result.stdout) == (code, ""), result.stderr
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert seed.dump() == before
    assert len(world.fake.requests) == 1


@pytest.mark.parametrize("text", [b"{", b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe{}",
                                  b'{"kind": "cluster.plan", "schema_version": 2, "sites": '
                                  + b"9" * 5000 + b"}"],
                         ids=["truncated", "deeply nested", "not UTF-8", "huge number"])
def test_plans_that_are_not_json(cli: Cli, tmp_path: Path, sqlite_url: str,
                                 text: bytes) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(text)
    result = cli("cluster", "apply", str(path), "--yes", "--database-url", sqlite_url)
    assert result.code == 2 and "is not a plan" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_plan_shows_volumes_and_samples_from_the_database(
        cli: Cli, world: World, tmp_path: Path) -> None:
    """A file's own figures are never shown: what a cluster holds is read again."""
    path = tmp_path / "plan.json"
    saved = world.run(cli, "run", "--tenant", "acme", "--save-plan", str(path),
                      "--format", "json")
    assert saved.code == 0, saved.stderr
    honest = json.loads(saved.stdout)
    plan = json.loads(path.read_text())
    first(plan)["volume"] = 999_999_999
    first(plan)["sample"] = ["a keyword that is not there"]
    first(plan)["existing_id"] = None
    path.write_text(json.dumps(plan))
    result = world.run(cli, "apply", str(path), "--yes", "--format", "json")
    assert result.code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert "999999999" not in result.stdout and "not there" not in result.stdout
    assert _clusters(shown) == _clusters(honest)


def _clusters(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    sites = (document.get("proposal") or document)["sites"]
    return [(c["name"], c["volume"], tuple(c["sample"]), c["existing_id"])
            for s in sites for c in s["clusters"]]
