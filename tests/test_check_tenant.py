"""``check --tenant``: every tenant-scoped check restricted exactly to the chosen accounts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from igny8ctl import api
from igny8ctl.checks import REGISTRY, Severity
from igny8ctl.config import Settings
from igny8ctl.report import CheckReport
from tests.conftest import Result
from tests.seed import Seeder

Cli = Callable[..., Result]
Ids = dict[str, int]
GLOBAL = tuple(c.id for c in REGISTRY if not c.tenant_scoped)


def set_owner(seed: Seeder, account: int, user: int) -> None:
    seed.execute("UPDATE igny8_core_auth_account SET owner_id = :u WHERE id = :a",
                 u=user, a=account)


@pytest.fixture
def tenants(seed: Seeder) -> Ids:
    """Three clean tenants (alpha, beta, gamma) and the system account with the fallback."""
    system = seed.account("aws-admin")
    set_owner(seed, system, seed.user("system.bot", system, role="system_bot"))
    seed.openai_settings(system)
    ids = {"system": system}
    for slug in ("alpha", "beta", "gamma"):
        account = seed.account(slug)
        owner = seed.user(f"{slug}.owner", account, role="owner")
        set_owner(seed, account, owner)
        site = seed.site(account, slug.title())
        cluster = seed.cluster(account, site, f"{slug} cluster", keywords_count=1, volume=100)
        seed.keyword(account, site, f"{slug} keyword", cluster=cluster, status="clustered")
        ids |= {slug: account, f"{slug}.owner": owner, f"{slug}.site": site,
                f"{slug}.cluster": cluster}
    return ids


def scoped(seed: Seeder, *slugs: str, checks: list[str] | None = None) -> CheckReport:
    return api.run_checks(Settings(database_url=seed.url), include=checks, tenants=list(slugs))


def found(report: CheckReport) -> dict[str, tuple[int, ...]]:
    """Every finding with rows, info aside: ``check:code`` -> its ids."""
    return {f.key: f.sample for r in report.results for f in r.findings
            if f.count and f.severity is not Severity.INFO}


# -- one defect of each kind in two tenants -------------------------------------------------


def dangling_users(seed: Seeder, ids: Ids) -> dict[str, tuple[int, ...]]:
    seed.dangling_user("ghost", account_id=999_999)
    return {"alpha": (), "beta": ()}


def foreign_owners(seed: Seeder, ids: Ids) -> dict[str, tuple[int, ...]]:
    for slug in ("alpha", "beta"):
        set_owner(seed, ids[slug], ids["gamma.owner"])
    return {"alpha": (ids["alpha"],), "beta": (ids["beta"],)}


def keywords_in_gamma_cluster(seed: Seeder, ids: Ids) -> dict[str, tuple[int, ...]]:
    leaks = {slug: seed.keyword(ids[slug], ids[f"{slug}.site"], f"{slug} leak",
                                cluster=ids["gamma.cluster"], status="clustered")
             for slug in ("alpha", "beta")}
    seed.execute("UPDATE planner_clusters SET keywords_count = 3, volume = 300 WHERE id = :c",
                 c=ids["gamma.cluster"])
    return {slug: (leak,) for slug, leak in leaks.items()}


def no_settings(seed: Seeder, ids: Ids) -> dict[str, tuple[int, ...]]:
    seed.execute("DELETE FROM system_integrationsettings")
    return {"alpha": (ids["alpha"],), "beta": (ids["beta"],)}


def stale_clusters(seed: Seeder, ids: Ids) -> dict[str, tuple[int, ...]]:
    seed.execute("UPDATE planner_clusters SET volume = 7 WHERE account_id IN (:a, :b, :g)",
                 a=ids["alpha"], b=ids["beta"], g=ids["gamma"])
    return {"alpha": (ids["alpha.cluster"],), "beta": (ids["beta.cluster"],)}


@dataclass(frozen=True)
class Case:
    finding: str
    arrange: Callable[[Seeder, Ids], dict[str, tuple[int, ...]]]

    @property
    def check(self) -> str:
        return self.finding.split(":")[0]


CASES = [
    Case("users.dangling-account:dangling", dangling_users),
    Case("accounts.owner:owner-other-account", foreign_owners),
    Case("tenancy.cross-tenant:planner_keywords.cluster_id", keywords_in_gamma_cluster),
    Case("ai.settings:unresolvable", no_settings),
    Case("clusters.counts:stale", stale_clusters),
]


def test_every_tenant_scoped_check_has_a_case() -> None:
    """A new tenant-scoped check must show here that it honours ``CheckContext.tenants``."""
    assert {case.check for case in CASES} == {c.id for c in REGISTRY if c.tenant_scoped}


@pytest.mark.parametrize("case", CASES, ids=[case.check for case in CASES])
def test_check_tenant_restricts_exactly(seed: Seeder, tenants: Ids, case: Case) -> None:
    expected = case.arrange(seed, tenants)
    everywhere = found(api.run_checks(Settings(database_url=seed.url)))
    assert set(expected["alpha"]) | set(expected["beta"]) <= set(everywhere.get(case.finding, ()))
    for chosen in (["alpha"], ["beta"], ["alpha", "beta"], [str(tenants["alpha"])]):
        report = scoped(seed, *chosen)
        ids = tuple(sorted(i for slug in ("alpha", "beta")
                           if slug in chosen or str(tenants[slug]) in chosen
                           for i in expected[slug]))
        assert found(report) == ({case.finding: ids} if ids else {}), chosen
        assert [t.slug for t in report.tenants] == [
            "alpha" if c == str(tenants["alpha"]) else c for c in chosen]


def test_links_touching_the_tenant_count_for_it(seed: Seeder, tenants: Ids) -> None:
    """Gamma's keyword in alpha's cluster is gamma's row, but it concerns alpha too."""
    intruder = seed.keyword(tenants["gamma"], tenants["gamma.site"], "intruder",
                            cluster=tenants["alpha.cluster"], status="clustered")
    key = "tenancy.cross-tenant:planner_keywords.cluster_id"
    assert found(scoped(seed, "alpha"))[key] == (intruder,)
    assert found(scoped(seed, "gamma"))[key] == (intruder,)
    assert key not in found(scoped(seed, "beta"))


def test_global_checks_are_skipped_and_reported(cli: Cli, seed: Seeder, tenants: Ids) -> None:
    seed.user("orphan")
    report = scoped(seed, "alpha")
    assert [info.id for info in report.skipped] == list(GLOBAL)
    assert {r.info.id for r in report.results} == {c.id for c in REGISTRY if c.tenant_scoped}
    result = cli("check", "--tenant", "alpha", "--database-url", seed.url, "--format", "json")
    document = json.loads(result.stdout)
    assert result.code == 0, "alpha is clean; the orphan has no tenant"
    assert document["tenants"] == [{"id": tenants["alpha"], "slug": "alpha"}]
    assert document["skipped"] == [
        {"id": c.id, "title": c.title, "reason": "not tenant-scoped"}
        for c in REGISTRY if not c.tenant_scoped]
    table = cli("check", "--tenant", "alpha", "--database-url", seed.url)
    assert "skipped, not tenant-scoped: users.orphaned" in table.stdout
    markdown = cli("check", "-t", "alpha", "--database-url", seed.url, "--format", "markdown")
    assert "tenants: alpha (id" in markdown.stdout and "skipped" in markdown.stdout
    junit = ET.fromstring(cli("check", "-t", "alpha", "--database-url", seed.url,
                              "--format", "junit").stdout)
    assert junit.get("skipped") == str(len(GLOBAL))
    assert [case.get("name") for case in junit.iter("testcase")
            if case.find("skipped") is not None] == list(GLOBAL)


def test_named_global_checks_run_on_the_whole_database(cli: Cli, seed: Seeder,
                                                       tenants: Ids) -> None:
    orphan = seed.user("orphan")
    report = scoped(seed, "alpha", checks=["users.*"])
    assert report.skipped == ()
    assert found(report) == {"users.orphaned:orphaned": (orphan,)}
    result = cli("check", "--tenant", "alpha", "--check", "users.orphaned", "--database-url",
                 seed.url)
    assert result.code == 1 and "run on the whole database: users.orphaned" in result.stdout


def test_whole_database_report_keeps_its_shape(cli: Cli, seed: Seeder, tenants: Ids) -> None:
    document = json.loads(cli("check", "--database-url", seed.url, "--format", "json").stdout)
    assert document["tenants"] is None and document["skipped"] == []


USAGE = {
    "unknown tenant": (["--tenant", "alpha", "--tenant", "nope"], "no tenant 'nope'"),
    "only global checks left": (
        ["--tenant", "alpha", *(arg for c in REGISTRY if c.tenant_scoped
                                for arg in ("--exclude", c.id))],
        "no tenant-scoped check is selected"),
    "with --record": (["--tenant", "alpha", "--record"], "--record stores whole-database"),
    "with --metrics-file": (["--tenant", "alpha", "--metrics-file", "m.prom"],
                            "--metrics-file stores whole-database"),
}


@pytest.mark.parametrize("args, message", USAGE.values(), ids=USAGE.keys())
def test_tenant_usage_errors(cli: Cli, seed: Seeder, tenants: Ids, args: list[str],
                             message: str) -> None:
    result = cli("check", *args, "--database-url", seed.url)
    assert result.code == 2 and message in result.stderr, result.stderr


@pytest.mark.parametrize("output_format", ["table", "json", "junit", "markdown"])
def test_hostile_tenant_slug_is_printed_safely(cli: Cli, seed: Seeder, tenants: Ids,
                                               output_format: str) -> None:
    slug = "[red]x[/]\x1b[2J|<b>\nforged"
    seed.account(slug)
    result = cli("check", "--tenant", slug, "--database-url", seed.url, "--format",
                 output_format)
    assert result.code in (0, 1), result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    assert not any(line.lstrip().startswith("forged") for line in result.stdout.splitlines())
    if output_format == "json":
        assert json.loads(result.stdout)["tenants"][0]["slug"] == slug
    if output_format == "markdown":
        assert "<b>" not in result.stdout


def test_a_table_without_primary_key_is_restricted_too(seed: Seeder, tenants: Ids) -> None:
    seed.execute("CREATE TABLE keyword_notes (account_id bigint NOT NULL REFERENCES "
                 "igny8_core_auth_account (id), keyword_id bigint "
                 "REFERENCES planner_keywords (id))")
    theirs = seed.scalar("SELECT id FROM planner_keywords WHERE keyword = 'gamma keyword'")
    seed.execute("INSERT INTO keyword_notes VALUES (:a, :k), (:b, :k), (:b, :k)",
                 a=tenants["alpha"], b=tenants["beta"], k=theirs)
    key = "tenancy.cross-tenant:keyword_notes.keyword_id"

    def count(*slugs: str) -> int:
        report = scoped(seed, *slugs)
        return sum(f.count for r in report.results for f in r.findings if f.key == key)

    assert (count("alpha"), count("beta"), count("gamma")) == (1, 2, 3)
