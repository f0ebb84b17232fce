"""Plans bind their targets, writes re-verify them under locks, undo checks before it writes:
against real databases, with the app writing at the same time."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from igny8ctl import api
from igny8ctl.config import Settings
from igny8ctl.errors import Refused
from igny8ctl.fixes.plan_file import load
from tests.conftest import Result
from tests.seed import Seeder
from tests.test_fixes import CREATE, data

Cli = Callable[..., Result]
PASSWORD = "pbkdf2_sha256$600000$journal-must-not-hold-this"


def settings(url: str) -> Settings:
    return Settings(database_url=url)


@pytest.fixture
def pg_seed(postgres_url: str) -> Iterator[Seeder]:
    seeder = Seeder(postgres_url)
    yield seeder
    seeder.close()


def make_tenant(seed: Seeder) -> dict[str, int]:
    plan = seed.plan("free")
    app = seed.account("app", plan=plan)
    owner = seed.user("app.owner", app, role="owner")
    seed.execute("UPDATE igny8_core_auth_account SET owner_id = :u WHERE id = :a",
                 u=owner, a=app)
    return {"plan": plan, "app": app, "owner": owner}


@pytest.fixture
def tenant(seed: Seeder) -> dict[str, int]:
    return make_tenant(seed)


class App(threading.Thread):
    """igny8 writing while the fix runs: new orphans (role viewer), and planned orphans
    attached to its own account. Each write commits on its own."""

    def __init__(self, url: str, account: int, attachable: list[int]) -> None:
        super().__init__(daemon=True)
        self.engine = sa.create_engine(Seeder(url).engine.url, poolclass=sa.pool.NullPool)
        self.account = account
        self.attachable = list(attachable)
        self.inserted: list[int] = []
        self.attached: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        users = sa.table("igny8_core_auth_user", sa.column("id"), sa.column("account_id"))
        n = 0
        while not self.stop.is_set() and n < 400:
            n += 1
            with self.engine.begin() as connection:
                self.inserted.append(int(connection.execute(sa.text(
                    "INSERT INTO igny8_core_auth_user (password, is_superuser, username, "
                    "first_name, last_name, email, is_staff, is_active, date_joined, role) "
                    "VALUES ('!', false, :name, '', '', :email, false, true, now(), 'viewer') "
                    "RETURNING id"), {"name": f"late{n}", "email": f"late{n}@example.com"}
                ).scalar_one()))
            if self.attachable:
                candidate = self.attachable.pop()
                with self.engine.begin() as connection:
                    done = connection.execute(
                        sa.update(users).where(users.c.id == candidate,
                                               users.c.account_id.is_(None))
                        .values(account_id=self.account).returning(users.c.id)).first()
                if done:
                    self.attached.append(candidate)
        self.engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [None, 40])
def test_a_fix_changes_only_planned_rows_while_the_app_writes(
        pg_seed: Seeder, postgres_url: str, batch_size: int | None) -> None:
    seed = pg_seed
    tenant = make_tenant(seed)
    orphans = [seed.user(f"orphan{i}", password=PASSWORD) for i in range(300)]
    before = {row["id"]: row for row in seed.rows("user")}
    plan = api.plan_fix(settings(postgres_url), "orphaned-users", CREATE)
    assert plan.targets == tuple(orphans)

    attached_first = orphans[::25]  # the app attaches these between plan and apply
    for user_id in attached_first:
        seed.execute("UPDATE igny8_core_auth_user SET account_id = :a WHERE id = :u",
                     a=tenant["app"], u=user_id)
    app = App(postgres_url, tenant["app"],
              [u for u in orphans[1::7] if u not in attached_first])
    app.start()
    try:
        result = api.apply_plan(settings(postgres_url), plan, batch_size)
    finally:
        app.stop.set()
        app.join(30)
    by_app = set(attached_first) | set(app.attached)

    users = {row["id"]: row for row in seed.rows("user")}
    accounts = {row["id"]: row for row in seed.rows("account")}
    created = {row["owner_id"]: row for row in accounts.values() if row["id"] != tenant["app"]}
    assert set(result.skipped) == by_app & set(result.skipped)
    assert set(attached_first) <= set(result.skipped)
    for user_id in orphans:
        row = users[user_id]
        if user_id in result.skipped:
            assert user_id in by_app
            assert (row["account_id"], row["role"]) == (tenant["app"], "editor"), user_id
            assert user_id not in created, "no account for a user the app attached"
        else:
            assert created[user_id]["id"] == row["account_id"], user_id
            assert row["role"] == "owner"
    for owner_id, account in created.items():
        assert users[owner_id]["account_id"] == account["id"], "the owner is a member"
    for user_id in app.inserted:
        assert (users[user_id]["account_id"], users[user_id]["role"]) == (None, "viewer")
    untouched = set(before) - set(orphans)
    assert all(users[u] == before[u] for u in untouched), "rows outside the plan stay"
    assert {u for u, row in users.items() if row["account_id"] is None} == set(app.inserted), \
        "the app's new orphans, and only they, remain"
    journal = seed.scalar("SELECT string_agg(coalesce(before::text, '') || "
                          "coalesce(after::text, ''), '') FROM igny8ctl_journal")
    assert PASSWORD not in journal, "re-attached users' password hashes are not journaled"


def test_journal_holds_changed_columns_and_digests_only(
        seed: Seeder, db_url: str, tenant: dict[str, int]) -> None:
    orphan = seed.user("orphan", password=PASSWORD)
    result = api.apply_fix(settings(db_url), "orphaned-users", CREATE)
    seed.metadata.reflect(seed.engine)
    rows = {(r["action"], r["table_name"]): r for r in seed.rows("igny8ctl_journal")}
    update = rows[("update", "igny8_core_auth_user")]
    before = update["before"] if isinstance(update["before"], dict) else json.loads(
        update["before"])
    assert before == {"account_id": None, "role": "editor"}
    # PostgreSQL hashes the binary values (its tables here have no json column).
    digest = r"hre:-?[0-9]+" if db_url.startswith("postgresql") else r"[0-9a-f]{32}"
    assert update["after"] is None and re.fullmatch(digest, update["digest"])
    insert = rows[("insert", "igny8_core_auth_account")]
    assert insert["before"] is None and insert["after"] is None
    assert re.fullmatch(digest, insert["digest"])
    assert result.run_id is not None and orphan in result.plan.targets


@pytest.mark.parametrize("changed", [False, True], ids=["unchanged", "changed"])
def test_undo_reads_the_md5_digests_of_earlier_journals(
        pg_seed: Seeder, postgres_url: str, changed: bool) -> None:
    """A journal written before binary digests holds md5s of the rows' text: undo still
    tells an untouched row from one the app changed since."""
    make_tenant(pg_seed)
    orphan = pg_seed.user("orphan")
    result = api.apply_fix(settings(postgres_url), "orphaned-users", CREATE)
    assert result.run_id is not None
    for table in ("igny8_core_auth_user", "igny8_core_auth_account"):
        pg_seed.execute(
            f"UPDATE igny8ctl_journal j SET digest = (SELECT md5(CAST(t AS text)) FROM {table} t "
            "WHERE t.id = j.row_id) WHERE j.run_id = :run AND j.table_name = :table",
            run=result.run_id, table=table)
    if changed:
        pg_seed.execute("UPDATE igny8_core_auth_user SET first_name = 'Changed' WHERE id = :u",
                        u=orphan)
    refusals = api.plan_undo(settings(postgres_url), result.run_id).refusals
    assert [(r.table, r.ids) for r in refusals] == (
        [("igny8_core_auth_user", (orphan,))] if changed else [])


def test_binary_digests_do_not_depend_on_the_session_time_zone(
        pg_seed: Seeder, postgres_url: str) -> None:
    """An undo from a session in another time zone than the fix's (``PGTZ``, a role's
    setting) sees the same rows: the text form of a timestamp would differ."""
    make_tenant(pg_seed)
    pg_seed.user("orphan")
    result = api.apply_fix(settings(postgres_url), "orphaned-users", CREATE)
    assert result.run_id is not None
    zone = ("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET TimeZone = %L', "
            "current_database(), '{}'); END $$")
    pg_seed.execute(zone.format("Asia/Kathmandu"))
    try:
        assert not api.plan_undo(settings(postgres_url), result.run_id).refusals
    finally:
        pg_seed.execute(zone.format("UTC"))


def test_a_table_with_a_json_column_keeps_md5_digests(
        pg_seed: Seeder, postgres_url: str) -> None:
    """``json`` has no hash function: such a table's rows are digested by their text, and
    undo still sees a change to that column."""
    make_tenant(pg_seed)
    pg_seed.execute("ALTER TABLE igny8_core_auth_user ADD COLUMN prefs json")
    orphan = pg_seed.user("orphan")
    pg_seed.execute("UPDATE igny8_core_auth_user SET prefs = '{\"theme\": \"dark\"}' "
                    "WHERE id = :u", u=orphan)
    result = api.apply_fix(settings(postgres_url), "orphaned-users", CREATE)
    assert result.run_id is not None
    with pg_seed.engine.connect() as connection:
        digests = dict(connection.execute(sa.text(
            "SELECT table_name, digest FROM igny8ctl_journal WHERE run_id = :run"),
            {"run": result.run_id}).all())
    assert re.fullmatch(r"[0-9a-f]{32}", digests["igny8_core_auth_user"])
    assert digests["igny8_core_auth_account"].startswith("hre:")
    assert not api.plan_undo(settings(postgres_url), result.run_id).refusals
    pg_seed.execute("UPDATE igny8_core_auth_user SET prefs = '{\"theme\": \"light\"}' "
                    "WHERE id = :u", u=orphan)
    refusals = api.plan_undo(settings(postgres_url), result.run_id).refusals
    assert [(r.table, r.ids) for r in refusals] == [("igny8_core_auth_user", (orphan,))]


def test_the_last_two_runs_undo_in_reverse_order(seed: Seeder, db_url: str,
                                                  tenant: dict[str, int]) -> None:
    """Undoing the newer run puts its rows back as the older one left them, so the older
    one can be undone next (a row version would read as changed there)."""
    site = seed.site(tenant["app"])
    cluster = seed.cluster(tenant["app"], site, "Shoes", keywords_count=7)
    seed.keyword(tenant["app"], site, "red shoes", cluster=cluster)
    first = api.apply_fix(settings(db_url), "cluster-counts", {})
    seed.keyword(tenant["app"], site, "blue shoes", cluster=cluster)
    second = api.apply_fix(settings(db_url), "cluster-counts", {})
    assert first.run_id and second.run_id and first.run_id != second.run_id
    for run_id in (second.run_id, first.run_id):
        assert not api.plan_undo(settings(db_url), run_id).refusals
        api.apply_undo(settings(db_url), run_id)
    assert seed.scalar("SELECT keywords_count FROM planner_clusters WHERE id = :c",
                       c=cluster) == 7


def test_undo_sees_a_write_the_fix_s_own_transaction_made_later(
        pg_seed: Seeder, postgres_url: str) -> None:
    """A trigger that changes the row again after the fix's statement: same transaction,
    other values; undo refuses rather than restore half of the row."""
    make_tenant(pg_seed)
    pg_seed.execute(
        "CREATE FUNCTION igny8ctl_test_bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "UPDATE igny8_core_auth_user SET is_staff = true WHERE id = NEW.id AND NOT is_staff; "
        "RETURN NULL; END $$")
    pg_seed.execute("CREATE TRIGGER igny8ctl_test_bump AFTER UPDATE OF account_id ON "
                    "igny8_core_auth_user FOR EACH ROW EXECUTE FUNCTION igny8ctl_test_bump()")
    orphan = pg_seed.user("orphan")
    result = api.apply_fix(settings(postgres_url), "orphaned-users",
                           {"strategy": "assign", "account": "app"})
    pg_seed.execute("DROP TRIGGER igny8ctl_test_bump ON igny8_core_auth_user")
    assert result.run_id is not None
    refusals = api.plan_undo(settings(postgres_url), result.run_id).refusals
    assert [(r.table, r.ids) for r in refusals] == [("igny8_core_auth_user", (orphan,))]


def test_create_account_succeeds_whatever_slugs_exist(
        seed: Seeder, db_url: str, tenant: dict[str, int]) -> None:
    alice = seed.user("alice")
    bob_a = seed.user("bob", email="bob@a.example")
    bob_b = seed.user("BOB", email="bob@b.example")
    for slug in ("alice", f"alice--{alice}", f"alice--{alice}-3", f"bob--{bob_a}",
                 f"bob--{bob_b}", f"bob--{bob_b}-2"):
        seed.account(slug)
    existing = {row["slug"] for row in seed.rows("account")}
    result = api.apply_fix(settings(db_url), "orphaned-users", CREATE)
    assert result.remaining == 0 and not result.skipped
    accounts = {row["owner_id"]: row["slug"] for row in seed.rows("account")
                if row["slug"] not in existing}
    assert set(accounts) == {alice, bob_a, bob_b}
    assert len(set(accounts.values())) == 3
    assert accounts[alice].startswith("alice--") and accounts[bob_a].startswith("bob--")


def created_run(seed: Seeder, url: str) -> tuple[str, int]:
    seed.user("orphan")
    result = api.apply_fix(settings(url), "orphaned-users", CREATE)
    assert result.run_id is not None
    account = seed.scalar("SELECT max(id) FROM igny8_core_auth_account")
    return result.run_id, int(account)


@pytest.mark.parametrize("foreign_key", ["present", "dropped"])
def test_undo_refuses_when_a_row_outside_the_run_depends_on_it(
        seed: Seeder, db_url: str, tenant: dict[str, int], foreign_key: str,
        cli: Cli) -> None:
    if foreign_key == "dropped":
        seed.drop_user_account_fk()
    run_id, account = created_run(seed, db_url)
    newcomer = seed.user("newcomer", account)
    before = data(seed)
    plan = api.plan_undo(settings(db_url), run_id)
    assert [(r.table, r.ids) for r in plan.refusals] == [("igny8_core_auth_user", (newcomer,))]
    with pytest.raises(Refused) as refused:
        api.apply_undo(settings(db_url), run_id)
    assert refused.value.rows == {"igny8_core_auth_user": [newcomer]}
    assert data(seed) == before, "nothing was written"
    result = cli("fix", "undo", run_id, "--apply", "--yes", "--format", "json",
                 "--database-url", db_url)
    assert result.code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"igny8_core_auth_user {newcomer}" in lines[0]
    document = json.loads(result.stdout)
    assert document["kind"] == "error"
    assert document["error"]["rows"] == {"igny8_core_auth_user": [newcomer]}
    assert data(seed) == before


def test_undo_refuses_after_migrate_made_the_column_not_null(
        seed: Seeder, db_url: str, tenant: dict[str, int]) -> None:
    run_id, _ = created_run(seed, db_url)
    api.apply_migration(settings(db_url), to="account-not-null")
    before = data(seed)
    plan = api.plan_undo(settings(db_url), run_id)
    assert any("no longer accepts NULL" in r.reason for r in plan.refusals)
    with pytest.raises(Refused, match=r"account_id no longer accepts NULL"):
        api.apply_undo(settings(db_url), run_id)
    assert data(seed) == before


def test_a_saved_plan_is_refused_when_a_target_changed(
        seed: Seeder, db_url: str, tenant: dict[str, int], cli: Cli, tmp_path: Path) -> None:
    first = seed.user("first")
    seed.user("second")
    path = tmp_path / "fix.plan.json"
    saved = cli("fix", "orphaned-users", "-s", "create-account", "--save-plan", str(path),
                "--database-url", db_url)
    assert saved.code == 0 and path.is_file()
    assert load(path).targets == api.plan_fix(settings(db_url), "orphaned-users",
                                              CREATE).targets
    seed.execute("UPDATE igny8_core_auth_user SET email = 'moved@example.com' WHERE id = :u",
                 u=first)
    before = data(seed)
    refused = cli("fix", "apply", str(path), "--yes", "--database-url", db_url)
    assert refused.code == 1 and f"ids {first}" in refused.stderr, refused
    assert len(refused.stderr.strip().splitlines()) == 1
    assert data(seed) == before

    fresh = tmp_path / "fresh.plan.json"
    cli("fix", "orphaned-users", "-s", "create-account", "--save-plan", str(fresh),
        "--database-url", db_url)
    applied = cli("fix", "apply", str(fresh), "--yes", "--format", "json",
                  "--database-url", db_url)
    assert applied.code == 0, applied
    document: dict[str, Any] = json.loads(applied.stdout)
    assert (document["kind"], document["rows_changed"]) == ("fix.result", 4)
    assert document["changed_by_someone_else"] == {"count": 0, "ids": []}


def test_preview_json_is_the_plan_and_set_of_own_column_is_refused(
        seed: Seeder, db_url: str, tenant: dict[str, int], cli: Cli) -> None:
    orphan = seed.user("orphan")
    preview = cli("fix", "orphaned-users", "-s", "create-account", "--format", "json",
                  "--database-url", db_url)
    document = json.loads(preview.stdout)
    assert document["kind"] == "fix.plan" and document["targets"][0][0] == orphan
    assert document["accounts"] == [{"owner_id": orphan, "slug": "orphan", "name": "Orphan"}]
    refused = cli("fix", "orphaned-users", "-s", "create-account", "--set", "slug=x",
                  "--database-url", db_url)
    assert refused.code == 2 and "--set slug" in refused.stderr
    misspelt = cli("fix", "orphaned-users", "-s", "create-account", "--role", "boss",
                   "--database-url", db_url)
    assert misspelt.code == 2 and "boss" in misspelt.stderr


def test_a_database_error_names_the_step_never_the_row(
        seed: Seeder, db_url: str, tenant: dict[str, int], cli: Cli) -> None:
    if seed.dialect == "sqlite":
        pytest.skip("SQLite cannot add a CHECK constraint to an existing table")
    seed.user("secret.person", email="secret.person@private.example")
    # A constraint of the app's that the new row breaks: PostgreSQL's own message would say
    # "Failing row contains (…, secret-person, …)".
    seed.execute("ALTER TABLE igny8_core_auth_account ADD CONSTRAINT app_rule "
                 "CHECK (slug NOT LIKE 'secret%')")
    before = data(seed)
    result = cli("fix", "orphaned-users", "-s", "create-account", "--apply", "--yes",
                 "--database-url", db_url)
    assert result.code == 3, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "during fix orphaned-users step 1" in lines[0], lines
    assert "app_rule" in lines[0] and "secret" not in lines[0]
    assert data(seed) == before


def test_undo_refuses_what_tenant_keys_would_reject(
        seed: Seeder, db_url: str, tenant: dict[str, int]) -> None:
    other = seed.account("other")
    other_site = seed.site(other, "Theirs")
    site = seed.site(tenant["app"], "Ours")
    theirs = seed.cluster(other, other_site, "Theirs", keywords_count=1, volume=100)
    leaked = seed.keyword(tenant["app"], site, "ours", volume=100, cluster=theirs,
                          status="clustered")
    result = api.apply_fix(settings(db_url), "cross-tenant", {})
    assert result.run_id is not None
    api.apply_migration(settings(db_url))
    before = data(seed)
    with pytest.raises(Refused, match=rf"planner_keywords {leaked} \(the tenant key"):
        api.apply_undo(settings(db_url), result.run_id)
    assert data(seed) == before


POLICY_ERRORS = [
    ({"orphan-users": "create-account"}, "repair.orphan-users"),
    ({"orphaned-users": "create-acount"}, "repair.orphaned-users"),
    ({"orphaned-users": "assign"}, "repair.orphaned-users"),
    ({"orphaned-users": "create-account:not a slug"}, "repair.orphaned-users.plan"),
    ({"orphaned-users": "create-account:"}, "repair.orphaned-users"),
    ({"cluster-counts": "yes"}, "repair.cluster-counts"),
    ({"empty-accounts": "delete:now"}, "repair.empty-accounts"),
]


@pytest.mark.parametrize("policy, key", POLICY_ERRORS)
def test_a_misspelt_repair_policy_is_a_usage_error_naming_it(
        policy: dict[str, str], key: str, sqlite_url: str) -> None:
    from igny8ctl.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        api.repair(Settings(database_url=sqlite_url, repair_policy=policy))
    assert error.value.key == key


@pytest.mark.parametrize("policy, key", [
    ({"orphaned-users": "assign:nosuch"}, "--account"),
    ({"dangling-accounts": "create-account:nosuch"}, "--plan"),
])
def test_a_policy_naming_what_does_not_exist_fails_with_nothing_to_repair(
        policy: dict[str, str], key: str, seed: Seeder, db_url: str,
        tenant: dict[str, int]) -> None:
    """Found when cron first runs it, not the night there is finally something to repair."""
    from igny8ctl.errors import ConfigError

    before = data(seed)
    with pytest.raises(ConfigError) as error:
        api.repair(Settings(database_url=db_url, repair_policy=policy))
    assert error.value.key == key
    assert data(seed) == before


@pytest.mark.parametrize("params, key", [
    ({"strategy": "create-account", "rol": "owner"}, "rol"),
    ({"strategy": "create-account", "role": "boss"}, "role"),
    ({"strategy": "assign"}, "account"),
    ({"strategy": "create-account", "user_ids": [2**63]}, "user_ids"),
    ({"strategy": "create-account", "set": {"owner_id": "1"}}, "set"),
])
def test_typed_parameters_refuse_what_they_do_not_know(params: dict[str, Any],
                                                       key: str) -> None:
    from igny8ctl.errors import ConfigError
    from igny8ctl.fixes.params import parse_params

    with pytest.raises(ConfigError) as error:
        parse_params("orphaned-users", params)
    assert error.value.key == key


@pytest.mark.parametrize("size", [None, 1, 2, 3, 7, 100])
def test_batches_hold_only_their_own_accounts_and_joins(size: int | None) -> None:
    from igny8ctl.fixes.base import NewAccount, Plan
    from igny8ctl.fixes.params import parse_params
    from igny8ctl.fixes.runner import plan_batches

    targets = (2, 3, 5, 8, 13, 21, 34)
    plan = Plan("orphaned-users", parse_params("orphaned-users", CREATE), "user", targets,
                tuple(f"d{t}" for t in targets), "f", (),
                accounts=tuple(NewAccount(t, f"s{t}", f"n{t}") for t in targets if t % 2),
                joins=tuple((t, 100 + t) for t in targets if not t % 2))
    batches = list(plan_batches(plan, size))
    assert len(batches) == -(-len(targets) // (size or len(targets)))
    assert sum((b.targets for b in batches), ()) == targets
    assert sum((b.digests for b in batches), ()) == plan.digests
    assert sum((b.accounts for b in batches), ()) == plan.accounts
    assert sum((b.joins for b in batches), ()) == plan.joins
    for batch in batches:
        assert {a.owner_id for a in batch.accounts} | {u for u, _ in batch.joins} == \
            set(batch.targets)
