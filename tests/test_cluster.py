"""``igny8ctl cluster`` end to end: the real openai client against a fake server on
127.0.0.1, real databases (both dialects), exact rows written, journal and undo."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from igny8ctl.config import Settings
from igny8ctl.db import create_engine, job_lock
from tests.conftest import ROOT, Result
from tests.fake_openai import FakeOpenAI, Reply
from tests.seed import NOW, Seeder

ACME_KEY = "sk-acme-DISTINCTIVE-7f3a9c2e51d4"
SYSTEM_KEY = "sk-system-DISTINCTIVE-0b8e6d4f2a19"
FLAG_KEY = "sk-flag-DISTINCTIVE-5c7e9a1b3d2f"
KEYS = (ACME_KEY, SYSTEM_KEY, FLAG_KEY)
FAST_RETRY = {"retry-after-ms": "1"}
Cli = Callable[..., Result]

KEYWORDS = [  # text, volume: grouped by the fake server on the first word
    ("seo tools", 900), ("seo audit", 500), ("seo checklist", 300),
    ("rank tracker", 800), ("rank checker", 200), ("rank monitoring", 100),
]


@dataclass
class World:
    url: str
    fake: FakeOpenAI
    system: int
    acme: int
    other: int
    site: int
    other_site: int
    keywords: dict[str, int]
    other_keyword: int
    rank_cluster: int

    def run(self, cli: Cli, *args: str) -> Result:
        return cli("cluster", *args, "--database-url", self.url)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def make_world(url: str, seed: Seeder, fake: FakeOpenAI) -> World:
    system = seed.account("aws-admin")
    seed.openai_settings(system, api_key=SYSTEM_KEY, base_url=fake.url, model="system-model")
    acme = seed.account("acme")
    seed.openai_settings(acme, api_key=ACME_KEY, base_url=fake.url, model="acme-model",
                         temperature=0.3, max_tokens=3000)
    site = seed.site(acme, "Blog")
    rank = seed.cluster(acme, site, "Rank")
    keywords = {text: seed.keyword(acme, site, text, volume=volume) for text, volume in KEYWORDS}
    other = seed.account("other")
    other_site = seed.site(other, "Other")
    other_keyword = seed.keyword(other, other_site, "seo tools", volume=50)
    for text in ("seo agency", "seo course", "rank math", "rank brain", "rank high"):
        seed.keyword(other, other_site, text)
    return World(url, fake, system, acme, other, site, other_site, keywords, other_keyword, rank)


@pytest.fixture
def world(db_url: str, seed: Seeder, fake: FakeOpenAI) -> World:
    """The tenants, on each dialect: for what writes or reads dialect-specific columns."""
    return make_world(db_url, seed, fake)


Lite = tuple[World, Seeder]


@pytest.fixture
def lite(sqlite_url: str, fake: FakeOpenAI) -> Iterator[tuple[World, Seeder]]:
    """The same on SQLite only: for paths that fail before writing or never touch JSON."""
    seeder = Seeder(sqlite_url)
    yield make_world(sqlite_url, seeder, fake), seeder
    seeder.close()


def tenant_rows(seed: Seeder) -> dict[str, list[dict[str, Any]]]:
    return {name: seed.rows(name) for name in ("cluster", "keyword", "settings", "account")}


def journal_text(seed: Seeder) -> str:
    with seed.engine.connect() as connection:
        return "\n".join(str(tuple(row)) for table in ("igny8ctl_runs", "igny8ctl_journal")
                         for row in connection.execute(sa.text(f"SELECT * FROM {table}")))


def assert_no_key(*texts: str) -> None:
    for text in texts:
        for key in KEYS:
            assert key not in text


# -- happy path ------------------------------------------------------------------------------


def test_apply_writes_exact_rows(cli: Cli, seed: Seeder, world: World) -> None:
    before = tenant_rows(seed)
    result = world.run(cli, "run", "--tenant", "acme", "--apply", "--yes")
    assert result.code == 0, result.stderr

    clusters = {row["name"]: row for row in seed.rows("cluster")}
    assert set(clusters) == {"Rank", "Seo"}
    rank, new = clusters["Rank"], clusters["Seo"]
    assert rank["id"] == world.rank_cluster
    assert (rank["keywords_count"], rank["volume"], rank["created_at"]) == (3, 1100,
                                                                            before["cluster"][0]["created_at"])
    assert rank["updated_at"] != before["cluster"][0]["updated_at"]
    assert {k: new[k] for k in ("description", "keywords_count", "volume", "status",
                                "account_id", "site_id")} == {
        "description": "About seo", "keywords_count": 3, "volume": 1700, "status": "active",
        "account_id": world.acme, "site_id": world.site}
    keywords = {row["id"]: row for row in seed.rows("keyword")}
    for text, keyword_id in world.keywords.items():
        row = keywords[keyword_id]
        assert row["cluster_id"] == (new["id"] if text.startswith("seo") else rank["id"])
        assert row["status"] == "clustered"
        assert row["updated_at"] != NOW.replace(tzinfo=None) and row["updated_at"] != NOW
    others = [row for row in before["keyword"] if row["account_id"] == world.other]
    assert [keywords[row["id"]] for row in others] == others

    request = world.fake.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {ACME_KEY}"
    assert request.body["model"] == "acme-model"
    assert request.body["temperature"] == 0.3 and request.body["max_tokens"] == 3000
    schema = request.body["response_format"]
    assert schema["type"] == "json_schema" and schema["json_schema"]["strict"] is True
    assert sorted(request.keywords) == sorted(world.keywords)
    assert '"Rank"' in request.system

    assert "tenant acme's openai settings" in result.stdout
    assert "1 clusters created, 1 reused, 6 keywords assigned" in result.stdout
    assert "1 requests, " in result.stdout
    assert_no_key(result.stdout, result.stderr, journal_text(seed))


def test_preview_writes_nothing(cli: Cli, seed: Seeder, world: World) -> None:
    before = seed.dump()
    result = world.run(cli, "run", "--tenant", "acme")
    assert result.code == 0, result.stderr
    assert seed.dump() == before
    assert "Seo" in result.stdout and "Rank (existing)" in result.stdout
    assert "seo tools, seo audit, seo checklist" in result.stdout
    assert "nothing was written" in result.stderr
    assert len(world.fake.requests) == 1


def test_json_output(cli: Cli, lite: Lite) -> None:
    world, _ = lite
    result = world.run(cli, "run", "--tenant", "acme", "--format", "json", "--apply", "--yes")
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["applied"]["clusters_created"] == 1
    assert document["applied"]["keywords_assigned"] == 6
    assert document["proposal"]["usage"]["requests"] == 1
    assert_no_key(result.stdout, result.stderr)


def test_undo_restores_every_row(cli: Cli, seed: Seeder, world: World) -> None:
    before = seed.dump()
    result = world.run(cli, "run", "--tenant", "acme", "--format", "json", "--apply", "--yes")
    run_id = json.loads(result.stdout)["applied"]["run_id"]
    assert seed.dump() != before
    undone = cli("fix", "undo", run_id, "--apply", "--yes", "--database-url", world.url)
    assert undone.code == 0, undone.stderr
    assert seed.dump() == before


# -- model failures -------------------------------------------------------------------------


def test_rate_limit_then_success(cli: Cli, lite: Lite) -> None:
    world, seed = lite
    world.fake.push(Reply(status=429, headers=FAST_RETRY))
    result = world.run(cli, "run", "--tenant", "acme", "--apply", "--yes")
    assert result.code == 0, result.stderr
    assert len(world.fake.requests) == 2
    assert "1 requests (1 retries)" in result.stdout
    assert len(seed.rows("cluster")) == 2


def test_server_errors_until_retries_run_out(cli: Cli, lite: Lite) -> None:
    world, seed = lite
    before = seed.dump()
    world.fake.push(*[Reply(status=503, headers=FAST_RETRY)] * 3)
    result = world.run(cli, "run", "--tenant", "acme", "--max-retries", "2", "--apply", "--yes")
    assert result.code == 3
    assert "answered 503" in result.stderr and "after 2 retries" in result.stderr
    assert "nothing was written" in result.stderr
    assert len(world.fake.requests) == 3
    assert seed.dump() == before


def test_timeout(cli: Cli, lite: Lite) -> None:
    world, seed = lite
    world.fake.push(Reply(delay=1.0))
    result = world.run(cli, "run", "--tenant", "acme", "--timeout", "0.2", "--max-retries", "0",
                       "--apply", "--yes")
    assert result.code == 3
    assert "no answer from" in result.stderr and "within 0.2s" in result.stderr
    assert len(seed.rows("cluster")) == 1


@pytest.mark.parametrize(("reply", "message"), [
    (Reply(content='{"clusters": [{"name": "Seo", '), "malformed JSON"),
    (Reply(content='{"groups": []}'), 'without a "clusters" array'),
    (Reply(content='{"clusters": [{"name": "Seo", "keywords": ["seo t'
           , finish_reason="length"), "truncated (finish_reason=length)"),
])
def test_bad_answers_write_nothing(cli: Cli, lite: Lite, reply: Reply, message: str) -> None:
    world, seed = lite
    before = seed.dump()
    world.fake.push(reply)
    result = world.run(cli, "run", "--tenant", "acme", "--apply", "--yes")
    assert result.code == 3
    assert message in result.stderr and "nothing was written" in result.stderr
    assert seed.dump() == before


def test_invented_and_missing_keywords(cli: Cli, seed: Seeder, world: World) -> None:
    first = {"clusters": [
        {"name": "Seo", "description": "", "keywords": ["seo tools", "seo audit", "seo hacks"]},
        {"name": "Rank", "description": "", "keywords": ["rank tracker"]},
    ]}
    follow_up = {"clusters": [{"name": "Rank", "description": "",
                               "keywords": ["rank checker", "rank checker"]}]}
    world.fake.push(Reply(content=json.dumps(first)), Reply(content=json.dumps(follow_up)))
    result = world.run(cli, "run", "--tenant", "acme", "--apply", "--yes")
    assert result.code == 0, result.stderr

    assert sorted(world.fake.requests[1].keywords) == [
        "rank checker", "rank monitoring", "seo checklist"]
    assert '"Seo", "Rank"' in world.fake.requests[1].system
    assert '"seo hacks"' in result.stdout and "invented" in result.stdout
    unclustered = sorted([world.keywords["seo checklist"], world.keywords["rank monitoring"]])
    assert f"keyword ids {unclustered[0]}, {unclustered[1]}" in result.stdout
    assert "1 keyword(s) the model put in a second cluster" in result.stdout
    keywords = {row["keyword"]: row for row in seed.rows("keyword")
                if row["account_id"] == world.acme}
    for text in ("seo checklist", "rank monitoring"):
        assert (keywords[text]["cluster_id"], keywords[text]["status"]) == (None, "pending")
    assert keywords["rank checker"]["cluster_id"] == world.rank_cluster
    assert "4 keywords assigned" in result.stdout


def test_nothing_clustered_nothing_written(cli: Cli, lite: Lite) -> None:
    world, seed = lite
    before = seed.dump()
    world.fake.push(*[Reply(content='{"clusters": []}')] * 2)
    result = world.run(cli, "run", "--tenant", "acme", "--apply", "--yes")
    assert result.code == 1 and "nothing to write" in result.stderr
    assert "6 left unclustered" in result.stdout
    assert seed.dump() == before


def test_batches_merge_clusters_by_normalised_name(cli: Cli, seed: Seeder, world: World) -> None:
    names = iter(["SEO", "Rank", "seo!", "Rank", "Seos", "ranks"])

    def answer(keywords: list[str]) -> dict[str, Any]:
        return {"clusters": [{"name": next(names), "description": "", "keywords": keywords}]}

    world.fake.push(*[Reply(answer=answer)] * 6)
    result = world.run(cli, "run", "--tenant", "acme", "--batch-size", "1", "--concurrency", "2",
                       "--apply", "--yes")
    assert result.code == 0, result.stderr
    assert len(world.fake.requests) == 6
    clusters = {row["name"]: row["keywords_count"] for row in seed.rows("cluster")}
    assert len(clusters) == 2 and clusters["Rank"] == 3 and sum(clusters.values()) == 6


def test_empty_and_duplicate_names(cli: Cli, lite: Lite) -> None:
    world, seed = lite
    answer = {"clusters": [
        {"name": "  ", "description": "", "keywords": ["seo tools", "seo audit"]},
        {"name": "Trackers", "description": "first", "keywords": ["rank tracker"]},
        {"name": "trackers", "description": "", "keywords": ["rank checker", "seo checklist"]},
        {"name": "Monitoring", "keywords": ["rank monitoring"], "extra": 1},
    ]}
    world.fake.push(Reply(content=json.dumps(answer)))
    result = world.run(cli, "run", "--tenant", "acme", "--apply", "--yes")
    assert result.code == 0, result.stderr
    clusters = {row["name"]: row for row in seed.rows("cluster")}
    assert clusters["seo tools"]["keywords_count"] == 2
    assert clusters["Trackers"]["keywords_count"] == 3
    assert clusters["Trackers"]["description"] == "first"
    assert clusters["Monitoring"]["keywords_count"] == 1


# -- settings --------------------------------------------------------------------------------


def drop_settings(seed: Seeder, account: int) -> None:
    seed.execute("DELETE FROM system_integrationsettings WHERE account_id = :a", a=account)


def test_system_fallback_is_visible(cli: Cli, seed: Seeder, world: World) -> None:
    drop_settings(seed, world.acme)
    result = world.run(cli, "run", "--tenant", "acme")
    assert result.code == 0, result.stderr
    assert "system account aws-admin's openai settings (fallback" in result.stdout
    assert world.fake.requests[0].headers["authorization"] == f"Bearer {SYSTEM_KEY}"
    assert world.fake.requests[0].body["model"] == "system-model"
    assert_no_key(result.stdout, result.stderr)


def test_no_fallback(cli: Cli, seed: Seeder, world: World) -> None:
    drop_settings(seed, world.acme)
    result = world.run(cli, "run", "--tenant", "acme", "--no-fallback")
    assert result.code == 2
    assert "no usable OpenAI API key for tenant acme" in result.stderr
    assert "--no-fallback" in result.stderr
    assert world.fake.requests == []


def test_inactive_or_keyless_settings_fall_back(cli: Cli, lite: Lite) -> None:
    world, seed = lite
    drop_settings(seed, world.acme)
    seed.openai_settings(world.acme, api_key="", base_url=world.fake.url)
    result = world.run(cli, "run", "--tenant", "acme")
    assert result.code == 0, result.stderr
    assert "fallback" in result.stdout


def test_no_key_anywhere_ignores_openai_api_key(cli: Cli, lite: Lite,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    world, seed = lite
    drop_settings(seed, world.acme)
    drop_settings(seed, world.system)
    monkeypatch.setenv("OPENAI_API_KEY", FLAG_KEY)
    result = world.run(cli, "run", "--tenant", "acme", "--base-url", world.fake.url)
    assert result.code == 2
    assert "no usable OpenAI API key for tenant acme" in result.stderr
    assert world.fake.requests == []
    assert_no_key(result.stdout, result.stderr)


@pytest.mark.parametrize("via", ["flag", "env"])
def test_key_and_model_overrides(cli: Cli, lite: Lite, via: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    world, _ = lite
    args = ["--model", "flag-model"]
    if via == "flag":
        args += ["--api-key", FLAG_KEY]
    else:
        monkeypatch.setenv("IGNY8CTL_OPENAI_API_KEY", FLAG_KEY)
    result = world.run(cli, "run", "--tenant", "acme", "--base-url", world.fake.url, *args)
    assert result.code == 0, result.stderr
    request = world.fake.requests[0]
    assert request.headers["authorization"] == f"Bearer {FLAG_KEY}"
    assert request.body["model"] == "flag-model"
    assert ("--api-key" if via == "flag" else "IGNY8CTL_OPENAI_API_KEY") in result.stdout
    assert_no_key(result.stdout, result.stderr)


def test_rejected_key(cli: Cli, lite: Lite) -> None:
    world, _ = lite
    world.fake.push(Reply(status=401, body=json.dumps(
        {"error": {"message": f"Incorrect API key provided: {ACME_KEY}"}})))
    result = world.run(cli, "run", "--tenant", "acme")
    assert result.code == 2
    assert "rejected the API key (401)" in result.stderr
    assert_no_key(result.stdout, result.stderr)


# -- selection -------------------------------------------------------------------------------


def test_foreign_keyword_ids_refused(cli: Cli, seed: Seeder, world: World) -> None:
    before = seed.dump()
    ids = [str(i) for i in world.keywords.values()]
    args = [arg for i in [*ids, str(world.other_keyword)] for arg in ("--keyword-id", i)]
    result = world.run(cli, "run", "--tenant", "acme", *args, "--apply", "--yes")
    assert result.code == 2
    assert f"keyword id(s) {world.other_keyword} are not keywords of tenant acme" \
        in result.stderr
    assert world.fake.requests == []
    assert seed.dump() == before


def test_keyword_ids_and_all(cli: Cli, seed: Seeder, world: World) -> None:
    chosen = [world.keywords[t] for t in ("seo tools", "seo audit", "seo checklist",
                                          "rank tracker", "rank checker")]
    args = [arg for i in chosen for arg in ("--keyword-id", str(i))]
    assert world.run(cli, "run", "--tenant", "acme", *args, "--apply", "--yes").code == 0
    assert sorted(world.fake.requests[0].keywords) == sorted(
        t for t in world.keywords if t != "rank monitoring")
    again = world.run(cli, "run", "--tenant", "acme", "--all")
    assert again.code == 0, again.stderr
    assert len(world.fake.requests[1].keywords) == 6


def test_recluster_all_updates_the_clusters_left(cli: Cli, lite: Lite) -> None:
    world, seed = lite
    old = seed.cluster(world.acme, world.site, "Old", keywords_count=2, volume=1400)
    foreign = seed.cluster(world.other, world.other_site, "Foreign", keywords_count=9, volume=9)
    seed.execute("UPDATE planner_keywords SET cluster_id = :c, status = 'clustered' "
                 "WHERE id IN (:a, :b)", c=old, a=world.keywords["seo tools"],
                 b=world.keywords["rank tracker"])
    seed.execute("UPDATE planner_keywords SET cluster_id = :c, status = 'clustered' "
                 "WHERE id = :a", c=foreign, a=world.keywords["seo audit"])
    foreign_row = [r for r in seed.rows("cluster") if r["id"] == foreign]
    result = world.run(cli, "run", "--tenant", "acme", "--all", "--apply", "--yes")
    assert result.code == 0, result.stderr
    clusters = {row["id"]: row for row in seed.rows("cluster")}
    assert (clusters[old]["keywords_count"], clusters[old]["volume"]) == (0, 0)
    assert [clusters[foreign]] == foreign_row
    assert sum(row["keywords_count"] for row in clusters.values()
               if row["account_id"] == world.acme) == 6


def test_fewer_than_five(cli: Cli, lite: Lite) -> None:
    world, seed = lite
    seed.execute("UPDATE planner_keywords SET status = 'archived' WHERE id IN (:a, :b)",
                 a=world.keywords["seo tools"], b=world.keywords["seo audit"])
    result = world.run(cli, "run", "--tenant", "acme")
    assert result.code == 2
    assert "needs 5 or more per site" in result.stderr
    assert world.fake.requests == []


def test_sites_are_clustered_separately(cli: Cli, seed: Seeder, world: World) -> None:
    shop = seed.site(world.acme, "Shop")
    for text in ("seo tools", "seo books", "seo mugs", "rank socks", "rank hats"):
        seed.keyword(world.acme, shop, text)
    tiny = seed.site(world.acme, "Tiny")
    seed.keyword(world.acme, tiny, "seo tiny")
    result = world.run(cli, "run", "--tenant", "acme", "--apply", "--yes")
    assert result.code == 0, result.stderr
    assert len(world.fake.requests) == 2
    assert f"Skipped site {tiny} (1 keywords): fewer than 5 keywords" in result.stdout
    by_site: dict[int, set[str]] = {}
    for row in seed.rows("cluster"):
        by_site.setdefault(row["site_id"], set()).add(row["name"])
    assert by_site == {world.site: {"Rank", "Seo"}, shop: {"Rank", "Seo"}}
    result = world.run(cli, "run", "--tenant", "acme", "--site", str(world.other_site))
    assert result.code == 2 and "is not a site of tenant acme" in result.stderr


def test_unknown_tenant(cli: Cli, lite: Lite) -> None:
    world, _ = lite
    result = world.run(cli, "run", "--tenant", "nobody")
    assert result.code == 2 and "no tenant 'nobody'" in result.stderr
    assert world.run(cli, "run", "--tenant", str(world.acme)).code == 0


# -- plans, confirmation, locks --------------------------------------------------------------


def test_saved_plan_applied_later(cli: Cli, seed: Seeder, world: World, tmp_path: Path) -> None:
    before = seed.dump()
    plan = tmp_path / "plan.json"
    result = world.run(cli, "run", "--tenant", "acme", "--save-plan", str(plan))
    assert result.code == 0, result.stderr
    assert seed.dump() == before
    assert f"igny8ctl cluster apply {plan}" in result.stderr
    assert_no_key(plan.read_text())
    assert json.loads(plan.read_text())["tenant"] == {"id": world.acme, "slug": "acme"}

    applied = world.run(cli, "apply", str(plan), "--yes")
    assert applied.code == 0, applied.stderr
    assert len(world.fake.requests) == 1
    assert {row["name"] for row in seed.rows("cluster")} == {"Rank", "Seo"}
    assert_no_key(applied.stdout, applied.stderr, journal_text(seed))

    again = world.run(cli, "apply", str(plan), "--yes")
    assert again.code == 1
    assert "changed since the proposal was made" in again.stderr


def test_plan_refused_when_keywords_changed(cli: Cli, seed: Seeder,
                                           world: World, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    assert world.run(cli, "run", "--tenant", "acme", "--save-plan", str(plan)).code == 0
    seed.execute("UPDATE planner_keywords SET keyword = 'seo tool' WHERE id = :i",
                 i=world.keywords["seo tools"])
    before = seed.dump()
    result = world.run(cli, "apply", str(plan), "--yes")
    assert result.code == 1
    assert "nothing was written" in result.stderr
    assert seed.dump() == before


def test_tampered_plan_refused(cli: Cli, lite: Lite, tmp_path: Path) -> None:
    world, _ = lite
    plan = tmp_path / "plan.json"
    assert world.run(cli, "run", "--tenant", "acme", "--save-plan", str(plan)).code == 0
    document = json.loads(plan.read_text())
    document["sites"][0]["clusters"][0]["keyword_ids"].append(world.other_keyword)
    plan.write_text(json.dumps(document))
    result = world.run(cli, "apply", str(plan), "--yes")
    assert result.code == 2 and "not selected" in result.stderr
    (tmp_path / "bad.json").write_text("{}")
    assert world.run(cli, "apply", str(tmp_path / "bad.json"), "--yes").code == 2


def test_apply_without_terminal_needs_yes(cli: Cli, lite: Lite) -> None:
    world, _ = lite
    result = world.run(cli, "run", "--tenant", "acme", "--apply")
    assert result.code == 2 and "--yes" in result.stderr
    assert world.fake.requests == []


def test_lock_busy(cli: Cli, seed: Seeder, world: World) -> None:
    engine = create_engine(Settings(database_url=world.url))
    with job_lock(engine, f"cluster:{world.acme}"):
        result = world.run(cli, "run", "--tenant", "acme", "--apply", "--yes")
    assert result.code == 4
    assert len(seed.rows("cluster")) == 1


# -- the local engine and imports ------------------------------------------------------------


def test_local_engine_on_the_demo(cli: Cli, tmp_path: Path) -> None:
    database = tmp_path / "demo.sqlite3"
    assert cli("demo", str(database)).code == 0
    url = f"sqlite:///{database}"
    previews = [cli("cluster", "run", "--tenant", "acme-seo", "--engine", "local",
                    "--database-url", url) for _ in range(2)]
    assert previews[0].code == 0, previews[0].stderr
    first, second = ([line for line in p.stdout.splitlines() if not line.startswith("Proposal")]
                     for p in previews)
    assert first == second
    applied = cli("cluster", "run", "--tenant", "acme-seo", "--engine", "local", "--apply",
                  "--yes", "--database-url", url)
    assert applied.code == 0, applied.stderr
    assert "backlink checker" in applied.stdout
    assert "OpenAI" not in applied.stdout


def test_help_and_check_do_not_import_openai() -> None:
    code = ("import sys; from igny8ctl.cli.main import main; main(['--help']); "
            "main(['cluster', 'run', '--help']); main(['check', '--list']); "
            "sys.exit(1 if 'openai' in sys.modules else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          check=False)
    assert done.returncode == 0, done.stderr
