"""Every fix against real databases: exact rows, undo byte for byte, idempotence, refusals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from igny8ctl import api
from igny8ctl.config import Settings
from igny8ctl.db import create_engine, job_lock
from igny8ctl.errors import ConfigError, LockBusy, Refused
from tests.conftest import Result
from tests.seed import Seeder

CREATE = {"strategy": "create-account", "plan": "free", "role": "owner"}
JOURNAL_TABLES = {"igny8ctl_journal", "igny8ctl_runs"}


def settings(url: str) -> Settings:
    return Settings(database_url=url)


def data(seed: Seeder) -> dict[str, list[dict[str, Any]]]:
    """Every igny8 table, fully, excluding igny8ctl's own journal."""
    seed.metadata.clear()
    seed.metadata.reflect(seed.engine)
    return {name: rows for name, rows in seed.dump().items() if name not in JOURNAL_TABLES}


def undo_last(url: str) -> None:
    run = api.fix_history(settings(url), limit=1).runs[0]
    api.apply_undo(settings(url), run.run_id)


@pytest.fixture
def tenant(seed: Seeder) -> dict[str, int]:
    plan = seed.plan("free")
    seed.plan("pro")
    acme = seed.account("acme", plan=plan)
    owner = seed.user("maya", acme, role="owner")
    seed.execute("UPDATE igny8_core_auth_account SET owner_id = :u WHERE id = :a",
                 u=owner, a=acme)
    return {"plan": plan, "acme": acme, "owner": owner}


#: Names a tenant's users give themselves, which create-account copies into accounts:
#: each must arrive as written, whatever the plan's values travel in (a JSON document,
#: PostgreSQL array literals).
HOSTILE_NAMES = [
    ("double quote", 'Ann "the" Admin'),
    ("backslashes", "C:\\Users\\\\x"),
    ("quote after a backslash", 'end\\"'),
    ("array braces and commas", "{a,b},{c}"),
    ("the word NULL", "NULL"),
    ("JSON null", "null"),
    ("surrounding spaces inside", "x  \t y"),
    ("a newline", "two\nlines"),
    ("non-ASCII", "Zoë 雪 \U0001f600"),
    ("an SQL quote", "O'Brien'); DROP TABLE x; --"),
]


@pytest.mark.parametrize("name", [n[1] for n in HOSTILE_NAMES],
                         ids=[n[0] for n in HOSTILE_NAMES])
def test_create_account_copies_hostile_names_exactly(seed: Seeder, db_url: str,
                                                     tenant: dict[str, int], name: str) -> None:
    user = seed.user("hostile", first_name=name, last_name="")
    api.apply_fix(settings(db_url), "orphaned-users", CREATE)
    assert seed.scalar("SELECT name FROM igny8_core_auth_account WHERE owner_id = :u",
                       u=user) == name


def test_create_account_builds_exact_accounts(seed: Seeder, db_url: str,
                                              tenant: dict[str, int]) -> None:
    seed.account("taken")
    seed.account("quarantine")
    long_name = "x" * 70
    first = seed.user("Taken", first_name="Tia", last_name="Ken")
    twin_a = seed.user("twin", email="twin@a.example")
    twin_b = seed.user("TWIN!", email="twin@b.example")
    longest = seed.user(long_name)
    owner_of = seed.user("already.owner")
    owned = seed.account("owned-one", owner=owner_of)
    before = data(seed)

    plan = api.plan_fix(settings(db_url), "orphaned-users", CREATE)
    assert plan.targets == (first, twin_a, twin_b, longest, owner_of)
    assert plan.joins == ((owner_of, owned),)
    assert {a.owner_id: a.slug for a in plan.accounts} == {
        first: f"taken--{first}", twin_a: f"twin--{twin_a}", twin_b: f"twin--{twin_b}",
        longest: "x" * 50}
    assert [(c.action, c.table, c.count) for c in plan.changes] == [
        ("insert", "igny8_core_auth_account", 4), ("update", "igny8_core_auth_user", 5)]
    assert data(seed) == before, "a preview writes nothing"

    result = api.apply_fix(settings(db_url), "orphaned-users", CREATE)
    assert (result.rows_changed, result.remaining) == (9, 0)
    accounts = {row["owner_id"]: row for row in seed.rows("account")}
    assert {uid: accounts[uid]["slug"] for uid in (first, twin_a, twin_b, longest)} == {
        first: f"taken--{first}", twin_a: f"twin--{twin_a}", twin_b: f"twin--{twin_b}",
        longest: "x" * 50,
    }
    created = accounts[first]
    assert (created["name"], created["plan_id"], created["status"], created["credits"]) == (
        "Tia Ken", tenant["plan"], "active", 0)
    assert created["created_at"] is not None and created["updated_at"] is not None
    users = {row["id"]: row for row in seed.rows("user")}
    assert users[owner_of]["account_id"] == owned, "an orphan owning an account joins it"
    assert all(users[u]["account_id"] == accounts[u]["id"] for u in (first, twin_a, longest))
    assert {users[u]["role"] for u in (first, twin_a, twin_b, longest, owner_of)} == {"owner"}
    assert len(seed.rows("account")) == len(before["igny8_core_auth_account"]) + 4

    again = api.apply_fix(settings(db_url), "orphaned-users", CREATE)
    assert (again.run_id, again.rows_changed) == (None, 0), "a second apply is a no-op"

    undo_last(db_url)
    assert data(seed) == before, "undo restores every row exactly"


def test_create_account_in_batches_matches_one_transaction(
        seed: Seeder, db_url: str, tenant: dict[str, int]) -> None:
    for i in range(7):
        seed.user(f"batch{i}")
    result = api.apply_fix(settings(db_url), "orphaned-users", CREATE, batch_size=3)
    assert (result.batches, result.remaining) == (3, 0)
    runs = api.fix_history(settings(db_url)).runs
    assert [(r.status, r.rows_changed) for r in runs] == [("applied", 14)]
    slugs = sorted(row["slug"] for row in seed.rows("account"))
    assert slugs == sorted(["acme", *(f"batch{i}" for i in range(7))])


def test_create_account_refuses_unmappable_not_null_column(
        seed: Seeder, db_url: str, tenant: dict[str, int]) -> None:
    seed.execute("ALTER TABLE igny8_core_auth_account ADD COLUMN billing_email "
                 "varchar(254) NOT NULL DEFAULT ''")
    if seed.dialect == "postgresql":
        seed.execute("ALTER TABLE igny8_core_auth_account ALTER COLUMN billing_email "
                     "DROP DEFAULT")
    else:  # SQLite cannot drop a default: rebuild the column's table definition instead
        pytest.skip("SQLite cannot add a NOT NULL column without a default")
    seed.user("orphan")
    before = data(seed)
    with pytest.raises(Refused, match=r"billing_email is NOT NULL without a default.*--set"):
        api.apply_fix(settings(db_url), "orphaned-users", CREATE)
    assert data(seed) == before
    api.apply_fix(settings(db_url), "orphaned-users",
                  CREATE | {"set": {"billing_email": "ops@example.com"}})
    assert seed.scalar("SELECT billing_email FROM igny8_core_auth_account WHERE slug = "
                       "'orphan'") == "ops@example.com"


def test_create_account_needs_an_existing_plan(seed: Seeder, db_url: str) -> None:
    seed.user("orphan")
    with pytest.raises(ConfigError, match="plan 'free' does not exist"):
        api.plan_fix(settings(db_url), "orphaned-users", CREATE)


def test_assign_with_filters(seed: Seeder, db_url: str, tenant: dict[str, int]) -> None:
    quarantine = seed.account("quarantine")
    seed.user("a", email="a@corp.example")
    seed.user("b", email="b@other.example")
    picked = seed.user("c", email="c@corp.example")
    params = {"strategy": "assign", "account": "quarantine", "email_domain": "corp.example",
              "user_ids": [picked]}
    result = api.apply_fix(settings(db_url), "orphaned-users", params)
    assert result.rows_changed == 1
    users = {row["username"]: row for row in seed.rows("user")}
    assert (users["c"]["account_id"], users["c"]["role"]) == (quarantine, "editor")
    assert users["a"]["account_id"] is None, "same domain, but not among --user-id"
    assert users["b"]["account_id"] is None
    assert result.plan.targets == (picked,)
    with pytest.raises(ConfigError, match="no account with slug 'nowhere'"):
        api.plan_fix(settings(db_url), "orphaned-users", params | {"account": "nowhere"})


def test_delete_refuses_without_cascade_then_cascades(
        seed: Seeder, db_url: str, tenant: dict[str, int]) -> None:
    orphan = seed.user("leaver")
    plain = seed.user("plain")
    content_type = seed.insert("content_type", app_label="auth", model="user")
    seed.insert("admin_log", action_time=seed_now(), object_id="1", object_repr="x",
                action_flag=1, change_message="", content_type_id=content_type,
                user_id=orphan)
    group = seed.insert("group", name="editors")
    seed.insert("user_groups", user_id=orphan, group_id=group)
    owned = seed.account("left-behind", owner=orphan)
    before = data(seed)
    delete = {"strategy": "delete"}

    with pytest.raises(Refused, match=r"django_admin_log\.user_id \(1 rows\).*"
                                      r"igny8_core_auth_account\.owner_id \(1 rows\).*--cascade"):
        api.apply_fix(settings(db_url), "orphaned-users", delete)
    assert data(seed) == before

    api.apply_fix(settings(db_url), "orphaned-users", delete | {"cascade": True})
    assert {row["id"] for row in seed.rows("user")} == {tenant["owner"]}
    assert seed.rows("admin_log") == [] and seed.rows("user_groups") == []
    assert seed.scalar(f"SELECT owner_id FROM igny8_core_auth_account WHERE id = {owned}") is None
    assert plain not in {row["id"] for row in seed.rows("user")}
    deleted = data(seed)

    undo_last(db_url)
    assert data(seed) == before
    undo_last(db_url)
    assert data(seed) == deleted, "an undo is journaled like any run, so it can be undone"


def seed_now() -> Any:
    from tests.seed import NOW

    return NOW


def test_dangling_users_get_accounts(seed: Seeder, db_url: str,
                                     tenant: dict[str, int]) -> None:
    ghost = seed.dangling_user("ghost", account_id=4040)
    result = api.apply_fix(settings(db_url), "dangling-accounts", CREATE)
    assert result.remaining == 0
    account = seed.scalar(f"SELECT account_id FROM igny8_core_auth_user WHERE id = {ghost}")
    assert seed.scalar(f"SELECT slug FROM igny8_core_auth_account WHERE id = {account}") == "ghost"


def test_cross_tenant_detaches_and_recounts(seed: Seeder, db_url: str,
                                            tenant: dict[str, int]) -> None:
    acme = tenant["acme"]
    other = seed.account("other")
    other_site = seed.site(other, "Theirs")
    site = seed.site(acme, "Ours")
    theirs = seed.cluster(other, other_site, "Theirs", keywords_count=2, volume=150)
    seed.keyword(other, other_site, "their keyword", volume=50, cluster=theirs,
                 status="clustered")
    leaked = seed.keyword(acme, site, "our keyword", volume=100, cluster=theirs,
                          status="clustered")
    misplaced = seed.keyword(acme, other_site, "misplaced")
    before = data(seed)

    plan = api.plan_fix(settings(db_url), "cross-tenant", {})
    assert any(f"planner_keywords.site_id link(s) into another tenant, ids {misplaced}" in n
               for n in plan.notes)
    result = api.apply_fix(settings(db_url), "cross-tenant", {})
    assert result.remaining == 1, "the site mismatch is reported, not repaired"
    rows = {row["id"]: row for row in seed.rows("keyword")}
    assert (rows[leaked]["cluster_id"], rows[leaked]["status"]) == (None, "pending")
    cluster = seed.rows("cluster")[0]
    assert (cluster["keywords_count"], cluster["volume"]) == (1, 50)
    undo_last(db_url)
    assert data(seed) == before


def test_cluster_counts(seed: Seeder, db_url: str, tenant: dict[str, int]) -> None:
    site = seed.site(tenant["acme"])
    stale = seed.cluster(tenant["acme"], site, "Stale", keywords_count=9, volume=9)
    right = seed.cluster(tenant["acme"], site, "Right", keywords_count=1, volume=10)
    seed.keyword(tenant["acme"], site, "a", volume=10, cluster=right)
    seed.keyword(tenant["acme"], site, "b", volume=7, cluster=stale)
    result = api.apply_fix(settings(db_url), "cluster-counts", {})
    assert (result.rows_changed, result.remaining) == (1, 0)
    counts = {row["id"]: (row["keywords_count"], row["volume"]) for row in seed.rows("cluster")}
    assert counts == {stale: (1, 7), right: (1, 10)}


def test_empty_accounts(seed: Seeder, db_url: str, tenant: dict[str, int]) -> None:
    system = seed.account("aws-admin")
    bare = seed.account("bare")
    rich = seed.account("rich")
    site = seed.site(rich, "Rich site")
    cluster = seed.cluster(rich, site, "C", keywords_count=1, volume=5)
    seed.keyword(rich, site, "k", volume=5, cluster=cluster)
    seed.openai_settings(rich)
    before = data(seed)

    with pytest.raises(ConfigError, match="--delete"):
        api.plan_fix(settings(db_url), "empty-accounts", {})
    plan = api.plan_fix(settings(db_url), "empty-accounts", {"delete": True})
    assert plan.targets == (bare,) and f"accounts {rich}" in plan.notes[0]
    api.apply_fix(settings(db_url), "empty-accounts", {"delete": True})
    assert {row["id"] for row in seed.rows("account")} == {tenant["acme"], system, rich}

    api.apply_fix(settings(db_url), "empty-accounts", {"delete": True, "cascade": True})
    assert {row["id"] for row in seed.rows("account")} == {tenant["acme"], system}
    assert seed.rows("keyword") == [] and seed.rows("site") == [] and seed.rows("settings") == []
    assert bare not in {row["id"] for row in seed.rows("account")}

    for run in api.fix_history(settings(db_url)).runs:
        api.apply_undo(settings(db_url), run.run_id)
    assert data(seed) == before


def test_empty_accounts_spares_what_is_not_empty(seed: Seeder, db_url: str,
                                                 tenant: dict[str, int]) -> None:
    """The incident's state: an orphan owning a tenant with data. Deleting that tenant
    would destroy what ``orphaned-users`` re-attaches; a system account without users is
    no defect."""
    seed.account("aws-admin")
    owned = seed.account("victim", owner=seed.user("victim.owner"))
    site = seed.site(owned, "Victim site")
    seed.keyword(owned, site, "kept", volume=1)
    bare = seed.account("bare")
    result = api.apply_fix(settings(db_url), "empty-accounts", {"delete": True, "cascade": True})
    assert result.plan.targets == (bare,)
    assert result.remaining == 1, "the victim waits for orphaned-users; aws-admin is no finding"
    assert owned in {row["id"] for row in seed.rows("account")}
    assert len(seed.rows("keyword")) == 1


def test_a_missing_system_account_blocks_deleting_accounts(
        seed: Seeder, db_url: str, tenant: dict[str, int], cli: Callable[..., Result],
        tmp_path: Path) -> None:
    seed.account("aws-admin")
    seed.account("bare")
    before = data(seed)
    config = tmp_path / "igny8ctl.toml"
    config.write_text('system_account = "aws-admn"\n')
    result = cli("fix", "empty-accounts", "--delete", "--cascade", "--apply", "--yes",
                 "--database-url", db_url, "--config", str(config))
    assert result.code == 1, result
    assert "system account 'aws-admn'" in result.stderr and "does not exist" in result.stderr
    assert data(seed) == before


def test_account_owners(seed: Seeder, db_url: str, tenant: dict[str, int]) -> None:
    acme = tenant["acme"]
    other = seed.account("other")
    late = seed.user("late.owner", other, role="owner", date_joined=seed_now().replace(year=2026))
    early = seed.user("early.owner", other, role="owner")
    seed.user("editor", other)
    seed.execute("UPDATE igny8_core_auth_account SET owner_id = :u WHERE id = :a",
                 u=tenant["owner"], a=other)
    lonely = seed.account("lonely")
    seed.user("lonely.editor", lonely)
    seed.execute("UPDATE igny8_core_auth_account SET owner_id = :u WHERE id = :a",
                 u=tenant["owner"], a=lonely)
    orphan_owner = seed.user("orphan.owner", role="owner")
    orphaned = seed.account("orphaned-owner", owner=orphan_owner)
    plan = api.plan_fix(settings(db_url), "account-owners", {})
    assert f"accounts {orphaned} are owned by users without an account" in plan.notes[0]
    api.apply_fix(settings(db_url), "account-owners", {})
    owners = {row["id"]: row["owner_id"] for row in seed.rows("account")}
    assert owners == {acme: tenant["owner"], other: early, lonely: None,
                      orphaned: orphan_owner}
    assert late < early, "the earlier id joined later: the owner is chosen by date_joined"


def test_undo_refuses_when_rows_changed_since(seed: Seeder, db_url: str,
                                              tenant: dict[str, int]) -> None:
    orphan = seed.user("orphan")
    result = api.apply_fix(settings(db_url), "orphaned-users", CREATE)
    seed.execute("UPDATE igny8_core_auth_user SET email = 'new@example.com' WHERE id = :u",
                 u=orphan)
    assert result.run_id is not None
    with pytest.raises(Refused, match=rf"igny8_core_auth_user {orphan}"):
        api.apply_undo(settings(db_url), result.run_id)


def test_concurrent_run_is_refused(seed: Seeder, db_url: str, tenant: dict[str, int],
                                   cli: Callable[..., Result]) -> None:
    seed.user("orphan")
    engine = create_engine(settings(db_url))
    with job_lock(engine, "fix:orphaned-users"):
        with pytest.raises(LockBusy):
            api.apply_fix(settings(db_url), "orphaned-users", CREATE)
        result = cli("fix", "orphaned-users", "--strategy", "create-account", "--apply",
                     "--yes", "--database-url", db_url)
    assert result.code == 4 and "holds the 'fix:orphaned-users' lock" in result.stderr
    if db_url.startswith("postgresql"):
        assert "lock (pid " in result.stderr, "the holder is named: pid, application, state"
    assert seed.scalar("SELECT count(*) FROM igny8_core_auth_user WHERE account_id IS NULL") == 1


def test_undo_waits_for_a_fix_still_committing_batches_of_its_run(
        seed: Seeder, db_url: str, tenant: dict[str, int], cli: Callable[..., Result]) -> None:
    seed.user("orphan")
    run_id = api.apply_fix(settings(db_url), "orphaned-users", CREATE).run_id
    assert run_id is not None
    before = data(seed)
    with job_lock(create_engine(settings(db_url)), "fix:orphaned-users"):
        result = cli("fix", "undo", run_id, "--apply", "--yes", "--database-url", db_url)
    assert result.code == 4 and "holds the 'fix:orphaned-users' lock" in result.stderr
    assert data(seed) == before


def test_undo_says_preview_only_when_it_writes_nothing(
        seed: Seeder, db_url: str, tenant: dict[str, int], cli: Callable[..., Result]) -> None:
    seed.user("orphan")
    run_id = api.apply_fix(settings(db_url), "orphaned-users", CREATE).run_id
    assert run_id is not None
    preview = cli("fix", "undo", run_id, "--database-url", db_url)
    assert preview.code == 0 and "Preview only" in preview.stdout
    applied = cli("fix", "undo", run_id, "--apply", "--yes", "--database-url", db_url)
    assert applied.code == 0 and f"undone {run_id}" in applied.stdout
    assert "Preview only" not in applied.stdout and "nothing was written" not in applied.stdout


def test_cli_preview_apply_and_refusal_without_terminal(
        seed: Seeder, db_url: str, tenant: dict[str, int], cli: Callable[..., Result]) -> None:
    seed.user("orphan")
    preview = cli("fix", "orphaned-users", "-s", "create-account", "--database-url", db_url)
    assert preview.code == 0 and "Preview only" in preview.stdout
    refused = cli("fix", "orphaned-users", "-s", "create-account", "--apply",
                  "--database-url", db_url)
    assert refused.code == 2 and "pass --yes" in refused.stderr
    applied = cli("fix", "orphaned-users", "-s", "create-account", "--apply", "--yes",
                  "--database-url", db_url)
    assert applied.code == 0 and "re-check: 0" in applied.stdout
    history = cli("fix", "history", "--database-url", db_url, "--format", "json")
    assert '"job": "orphaned-users"' in history.stdout
