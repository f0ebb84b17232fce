"""Every check against a real database: a seeded defect is found with exact counts and ids."""

from __future__ import annotations

import pytest

from igny8ctl import api
from igny8ctl.checks import REGISTRY, Severity
from igny8ctl.config import Settings
from igny8ctl.report import CheckReport
from tests.seed import Seeder


def run(url: str, *checks: str, sample: int = 20) -> CheckReport:
    return api.run_checks(Settings(database_url=url), include=list(checks) or None,
                          sample_limit=sample)


def finding(report: CheckReport, key: str) -> tuple[int, tuple[int, ...]]:
    for result in report.results:
        for f in result.findings:
            if f.key == key:
                return f.count, f.sample
    raise AssertionError(f"no finding {key}")


@pytest.fixture
def clean(seed: Seeder) -> dict[str, int]:
    """A small, defect-free tenant with the system fallback configured."""
    system = seed.account("aws-admin")
    bot = seed.user("system.bot", system, role="system_bot")
    seed.execute("UPDATE igny8_core_auth_account SET owner_id = :u WHERE id = :a",
                 u=bot, a=system)
    seed.openai_settings(system)
    acme = seed.account("acme")
    owner = seed.user("maya", acme, role="owner")
    seed.execute("UPDATE igny8_core_auth_account SET owner_id = :u WHERE id = :a",
                 u=owner, a=acme)
    site = seed.site(acme, "Blog")
    cluster = seed.cluster(acme, site, "SEO", keywords_count=2, volume=300)
    seed.keyword(acme, site, "seo tools", volume=100, cluster=cluster, status="clustered")
    seed.keyword(acme, site, "seo audit", volume=200, cluster=cluster, status="clustered")
    seed.keyword(acme, site, "rank tracker", volume=50)
    seed.openai_settings(acme)
    return {"system": system, "acme": acme, "owner": owner, "site": site, "cluster": cluster}


def test_clean_database_passes_every_check(db_url: str, clean: dict[str, int]) -> None:
    report = run(db_url, "*", )
    data_findings = [f for r in report.results for f in r.findings
                     if f.count and not f.check.startswith("schema.")]
    assert data_findings == []
    assert report.passed


def test_orphaned_users(db_url: str, seed: Seeder, clean: dict[str, int]) -> None:
    ids = [seed.user(f"orphan{i}") for i in range(3)]
    report = run(db_url, "users.orphaned", sample=2)
    assert finding(report, "users.orphaned:orphaned") == (3, tuple(ids[:2]))
    assert not report.passed


def test_dangling_account(db_url: str, seed: Seeder, clean: dict[str, int]) -> None:
    first = seed.dangling_user("ghost1", account_id=777)
    second = seed.dangling_user("ghost2", account_id=778)
    report = run(db_url, "users.dangling-account")
    assert finding(report, "users.dangling-account:dangling") == (2, (first, second))
    message = report.results[0].findings[0].message
    assert "777" in message and "778" in message


def test_schema_nullable_and_fk(db_url: str, seed: Seeder, clean: dict[str, int]) -> None:
    report = run(db_url, "schema.*")
    assert finding(report, "schema.user-account-nullable:nullable")[0] == 1
    assert finding(report, "schema.user-account-fk:missing")[0] == 0
    seed.drop_user_account_fk()
    if seed.dialect == "postgresql":
        report = run(db_url, "schema.*")
        assert finding(report, "schema.user-account-fk:missing")[0] == 1


def test_schema_checks_see_not_valid_constraints(postgres_url: str) -> None:
    seed = Seeder(postgres_url)
    seed.drop_user_account_fk()
    seed.execute(
        "ALTER TABLE igny8_core_auth_user ADD CONSTRAINT acct_not_null "
        "CHECK (account_id IS NOT NULL) NOT VALID"
    )
    seed.execute(
        "ALTER TABLE igny8_core_auth_user ADD CONSTRAINT acct_fk FOREIGN KEY (account_id) "
        "REFERENCES igny8_core_auth_account (id) DEFERRABLE INITIALLY DEFERRED NOT VALID"
    )
    report = run(postgres_url, "schema.user-*")
    nullable = report.results[0].findings[0]
    assert nullable.count == 1 and "acct_not_null exists but is NOT VALID" in nullable.message
    assert finding(report, "schema.user-account-fk:not-valid")[0] == 1

    seed.execute("ALTER TABLE igny8_core_auth_user VALIDATE CONSTRAINT acct_not_null")
    seed.execute("ALTER TABLE igny8_core_auth_user VALIDATE CONSTRAINT acct_fk")
    report = run(postgres_url, "schema.user-*")
    assert [r.detail for r in report.results] == [
        "enforced by validated CHECK acct_not_null", "foreign key acct_fk"]
    seed.execute("ALTER TABLE igny8_core_auth_user ALTER COLUMN account_id SET NOT NULL")
    report = run(postgres_url, "schema.user-account-nullable")
    assert report.results[0].detail == "enforced by the column's NOT NULL constraint"
    seed.close()


def test_account_owner_defects(db_url: str, seed: Seeder, clean: dict[str, int]) -> None:
    other = seed.account("other")
    member = seed.user("other.member", other, role="owner")
    missing = seed.account("missing-owner", owner=None)
    seed.user("missing.member", missing)
    seed.drop_user_account_fk()
    seed.execute("UPDATE igny8_core_auth_account SET owner_id = :u WHERE id = :a",
                 u=member, a=other)
    gone = seed.account("gone-owner")
    seed.user("gone.member", gone)
    stolen = seed.account("stolen-owner", owner=clean["owner"])
    seed.user("stolen.member", stolen)
    empty = seed.account("empty", owner=None)
    if seed.dialect == "postgresql":
        seed.execute("ALTER TABLE igny8_core_auth_account DROP CONSTRAINT "
                     "igny8_core_auth_acco_owner_id_53bd7be3_fk_igny8_cor")
    seed.execute("UPDATE igny8_core_auth_account SET owner_id = 424242 WHERE id = :a", a=gone)

    report = run(db_url, "accounts.owner")
    assert finding(report, "accounts.owner:owner-row-missing") == (1, (gone,))
    assert finding(report, "accounts.owner:owner-other-account") == (1, (stolen,))
    assert finding(report, "accounts.owner:owner-missing") == (2, (missing, empty))
    assert finding(report, "accounts.owner:no-users") == (1, (empty,))


def test_cross_tenant_links(db_url: str, seed: Seeder, clean: dict[str, int]) -> None:
    other = seed.account("other")
    other_site = seed.site(other, "Other")
    other_cluster = seed.cluster(other, other_site, "Other cluster")
    acme, site = clean["acme"], clean["site"]
    into_cluster = seed.keyword(acme, site, "leaky keyword", cluster=other_cluster)
    onto_site = seed.keyword(acme, other_site, "misplaced keyword")
    cluster_on_site = seed.cluster(acme, other_site, "Misplaced cluster")

    report = run(db_url, "tenancy.cross-tenant")
    assert finding(report, "tenancy.cross-tenant:planner_keywords.cluster_id") == (
        1, (into_cluster,))
    assert finding(report, "tenancy.cross-tenant:planner_keywords.site_id") == (1, (onto_site,))
    assert finding(report, "tenancy.cross-tenant:planner_clusters.site_id") == (
        1, (cluster_on_site,))


def test_cross_tenant_covers_new_tenant_tables(
    db_url: str, seed: Seeder, clean: dict[str, int]
) -> None:
    seed.execute(
        "CREATE TABLE writer_briefs (id integer PRIMARY KEY, account_id bigint NOT NULL "
        "REFERENCES igny8_core_auth_account (id), cluster_id bigint "
        "REFERENCES planner_clusters (id))"
    )
    other = seed.account("other")
    other_cluster = seed.cluster(other, seed.site(other, "Other"), "Theirs")
    seed.execute("INSERT INTO writer_briefs VALUES (1, :a, :c), (2, :a, :own)",
                 a=clean["acme"], c=other_cluster, own=clean["cluster"])
    report = run(db_url, "tenancy.cross-tenant")
    assert finding(report, "tenancy.cross-tenant:writer_briefs.cluster_id") == (1, (1,))


def test_a_tenant_table_without_primary_key_is_counted_not_skipped(
    db_url: str, seed: Seeder, clean: dict[str, int]
) -> None:
    seed.execute(
        "CREATE TABLE keyword_notes (account_id bigint NOT NULL "
        "REFERENCES igny8_core_auth_account (id), keyword_id bigint "
        "REFERENCES planner_keywords (id))"
    )
    other = seed.account("other")
    theirs = seed.keyword(other, seed.site(other, "Other"), "their keyword")
    seed.execute("INSERT INTO keyword_notes VALUES (:a, :k), (:a, :k)", a=clean["acme"], k=theirs)
    report = run(db_url, "tenancy.cross-tenant")
    assert finding(report, "tenancy.cross-tenant:keyword_notes.keyword_id") == (2, ())
    result = next(r for r in report.results if r.info.id == "tenancy.cross-tenant")
    message = next(f.message for f in result.findings if f.code == "keyword_notes.keyword_id")
    assert "no primary key" in message and not report.passed


def test_ai_settings_fallback_is_visible(
    db_url: str, seed: Seeder, clean: dict[str, int]
) -> None:
    relying = seed.account("relying")
    inactive = seed.account("inactive")
    seed.openai_settings(inactive, active=False)
    keyless = seed.account("keyless")
    seed.openai_settings(keyless, api_key="")
    report = run(db_url, "ai.settings")
    assert finding(report, "ai.settings:unresolvable") == (0, ())
    assert finding(report, "ai.settings:fallback") == (3, (relying, inactive, keyless))
    assert report.passed


def test_ai_settings_unresolvable_without_fallback(
    db_url: str, seed: Seeder, clean: dict[str, int]
) -> None:
    relying = seed.account("relying")
    seed.execute("UPDATE system_integrationsettings SET is_active = :f WHERE account_id = :a",
                 f=False, a=clean["system"])
    report = run(db_url, "ai.settings")
    count, sample = finding(report, "ai.settings:unresolvable")
    assert (count, sample) == (2, (clean["system"], relying))
    assert "aws-admin has no active openai api_key" in report.results[0].findings[0].message


def test_cluster_counts(db_url: str, seed: Seeder, clean: dict[str, int]) -> None:
    acme, site = clean["acme"], clean["site"]
    stale = seed.cluster(acme, site, "Stale", keywords_count=5, volume=10)
    empty_ok = seed.cluster(acme, site, "Empty")
    seed.execute("UPDATE planner_clusters SET volume = 301 WHERE id = :c", c=clean["cluster"])
    report = run(db_url, "clusters.counts")
    assert finding(report, "clusters.counts:stale") == (2, (clean["cluster"], stale))
    assert empty_ok not in finding(report, "clusters.counts:stale")[1]
    assert report.passed, "clusters.counts is a warning: it does not fail the default run"


def test_every_check_documents_why_and_fix() -> None:
    for check in REGISTRY:
        doc = check.info().rationale
        assert "Why:" in doc and "Fix:" in doc, check.id
        assert check.severity in (Severity.ERROR, Severity.WARNING)


@pytest.mark.slow
def test_a_statement_timeout_names_the_check_and_the_setting(postgres_url: str) -> None:
    """A check stuck behind another session's lock is cancelled by statement_timeout, and
    the one line says which check and which bound."""
    import psycopg

    from igny8ctl.errors import DatabaseUnavailable

    with psycopg.connect(postgres_url.replace("+psycopg", "")) as holder:
        holder.execute("LOCK TABLE igny8_core_auth_user IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(DatabaseUnavailable) as error:
            api.run_checks(Settings(database_url=postgres_url, statement_timeout_ms=300),
                           include=["users.orphaned"])
        holder.rollback()
    message = str(error.value)
    assert "during check users.orphaned" in message, message
    assert "statement_timeout (300 ms)" in message and "\n" not in message
