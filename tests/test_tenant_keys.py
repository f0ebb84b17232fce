"""The ``tenant-keys`` revision against real PostgreSQL and SQLite databases.

Each test seeds two tenants (acme and globex) with an owner, a site, a cluster and a
keyword each, runs the real migration, and asserts what the database now refuses.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from igny8ctl.config import Settings
from igny8ctl.errors import ExitCode, LockBusy
from igny8ctl.migrations import ACCOUNT_NOT_NULL, TENANT_KEYS, runner
from igny8ctl.migrations.tenant_keys import KEY_SUFFIX, UNIQUE_SUFFIX
from tests.conftest import Result
from tests.migrate_support import ACCOUNT, USER, version_table_exists, wait_for
from tests.seed import NOW, Seeder

Cli = Callable[..., Result]
KEYWORD, CLUSTER, SITE = "planner_keywords", "planner_clusters", "igny8_core_auth_site"
LINKS = ["planner_clusters.site_id", "planner_keywords.cluster_id", "planner_keywords.site_id",
         f"{ACCOUNT}.owner_id"]


@dataclass(frozen=True)
class Tenant:
    account: int
    owner: int
    site: int
    cluster: int
    keyword: int


def tenant(seed: Seeder, slug: str) -> Tenant:
    account = seed.account(slug)
    owner = seed.user(f"{slug}-owner", account, role="owner")
    seed.execute(f"UPDATE {ACCOUNT} SET owner_id = :u WHERE id = :a", u=owner, a=account)
    site = seed.site(account, slug.title())
    cluster = seed.cluster(account, site, f"{slug} cluster")
    keyword = seed.keyword(account, site, f"{slug} keyword", cluster=cluster)
    return Tenant(account, owner, site, cluster, keyword)


@pytest.fixture
def two(seed: Seeder) -> tuple[Tenant, Tenant]:
    return tenant(seed, "acme"), tenant(seed, "globex")


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Seeder]:
    seeder = Seeder(postgres_url)
    yield seeder
    seeder.close()


def enforcing(seed: Seeder) -> sa.Engine:
    """An engine whose connections enforce foreign keys, as Django's do on SQLite."""
    engine = sa.create_engine(seed.engine.url, poolclass=sa.pool.NullPool)
    if seed.dialect == "sqlite":
        sa.event.listen(engine, "connect",
                        lambda connection, _: connection.execute("PRAGMA foreign_keys = ON"))
    return engine


def write(seed: Seeder, sql: str, **params: object) -> None:
    engine = enforcing(seed)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def keys(seed: Seeder) -> dict[str, bool]:
    """Composite foreign keys on the link tables: name -> validated."""
    if seed.dialect == "postgresql":
        with seed.engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT conname, convalidated FROM pg_constraint WHERE contype = 'f' "
                "AND cardinality(conkey) = 2").all()
        return {name: bool(valid) for name, valid in rows}
    found = {}
    with seed.engine.connect() as connection:
        for table in (KEYWORD, CLUSTER, ACCOUNT):
            sql = connection.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = ?", (table,)).scalar_one()
            for part in sql.split("CONSTRAINT ")[1:]:
                found[part.split(" ", 1)[0].strip('"')] = True
    return found


def unique_indexes(seed: Seeder) -> dict[str, bool]:
    if seed.dialect == "postgresql":
        with seed.engine.connect() as connection:
            rows = connection.execute(sa.text(
                "SELECT c.relname, x.indisvalid FROM pg_index x JOIN pg_class c "
                "ON c.oid = x.indexrelid WHERE c.relname LIKE :pattern"),
                {"pattern": f"%{UNIQUE_SUFFIX}"}).all()
        return {name: bool(valid) for name, valid in rows}
    with seed.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT name FROM sqlite_master WHERE name LIKE "
                                          ":pattern"), {"pattern": f"%{UNIQUE_SUFFIX}"}).all()
    return {name: True for (name,) in rows}


def current(seed: Seeder) -> tuple[str, ...]:
    return runner.status(Settings(database_url=seed.url)).current


def test_keys_refuse_links_across_tenants(db_url: str, seed: Seeder, cli: Cli,
                                          two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    before = seed.dump()

    result = cli("migrate", "apply", "--database-url", db_url)

    assert result.code == 0, result.stderr
    assert "no row links to another tenant's row" in result.stdout
    assert len(keys(seed)) == 4 and all(keys(seed).values())
    assert all(name.endswith(KEY_SUFFIX) and len(name.encode()) <= 63 for name in keys(seed))
    assert len(unique_indexes(seed)) == 3 and all(unique_indexes(seed).values())
    assert {k: v for k, v in seed.dump().items() if k != "igny8ctl_alembic_version"} == {
        k: v for k, v in before.items()}, "not one row changed"
    crossing = [
        (f"INSERT INTO {KEYWORD} (keyword, volume, difficulty, intent, status, created_at, "
         "updated_at, account_id, cluster_id, site_id) VALUES ('x', 1, 1, 'informational', "
         "'pending', :now, :now, :a, :c, :s)", {"a": acme.account, "c": globex.cluster,
                                                "s": acme.site, "now": NOW}),
        (f"UPDATE {KEYWORD} SET site_id = :s WHERE id = :k", {"s": globex.site,
                                                               "k": acme.keyword}),
        (f"UPDATE {CLUSTER} SET site_id = :s WHERE id = :c", {"s": globex.site,
                                                               "c": acme.cluster}),
        (f"UPDATE {ACCOUNT} SET owner_id = :u WHERE id = :a", {"u": globex.owner,
                                                                "a": acme.account}),
        (f"UPDATE {USER} SET account_id = :a WHERE id = :u", {"a": globex.account,
                                                               "u": acme.owner}),
    ]
    for sql, params in crossing:
        with pytest.raises(sa.exc.IntegrityError):
            write(seed, sql, **params)
    write(seed, f"UPDATE {KEYWORD} SET cluster_id = NULL WHERE id = :k", k=acme.keyword)
    write(seed, f"UPDATE {KEYWORD} SET cluster_id = :c WHERE id = :k", c=acme.cluster,
          k=acme.keyword)
    write(seed, f"UPDATE {ACCOUNT} SET owner_id = NULL WHERE id = :a", a=acme.account)
    check = json.loads(cli("check", "--database-url", db_url, "-c", "schema.tenant-keys",
                           "--format", "json").stdout)
    assert check["passed"] and check["checks"][0]["detail"].startswith("4 of 4 links enforced")


def test_preflight_refuses_and_keeps_the_revision_before(
        db_url: str, seed: Seeder, cli: Cli, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    seed.execute(f"UPDATE {KEYWORD} SET cluster_id = :c WHERE id = :k", c=globex.cluster,
                 k=acme.keyword)
    seed.execute(f"UPDATE {ACCOUNT} SET owner_id = :u WHERE id = :a", u=globex.owner,
                 a=acme.account)

    result = cli("migrate", "apply", "--database-url", db_url)

    assert result.code == ExitCode.FINDINGS
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert "refusing to add tenant keys, nothing was changed" in message
    assert f"1 planner_keywords.cluster_id row(s) in another tenant (ids {acme.keyword}) " \
           "(repair: igny8ctl fix cross-tenant)" in message
    assert "(repair: igny8ctl fix account-owners)" in message
    assert current(seed) == (ACCOUNT_NOT_NULL,), "the revision before stays applied"
    assert keys(seed) == {} and unique_indexes(seed) == {}
    document = json.loads(cli("migrate", "apply", "--database-url", db_url,
                              "--format", "json").stdout)
    assert document["kind"] == "error" and document["error"]["rows"] == {
        KEYWORD: [acme.keyword], ACCOUNT: [acme.account]}

    seed.execute(f"UPDATE {KEYWORD} SET cluster_id = :c WHERE id = :k", c=acme.cluster,
                 k=acme.keyword)
    seed.execute(f"UPDATE {ACCOUNT} SET owner_id = :u WHERE id = :a", u=acme.owner,
                 a=acme.account)
    assert cli("migrate", "apply", "--database-url", db_url).code == 0
    assert current(seed) == (TENANT_KEYS,)


def test_a_null_tenant_column_refuses(pg: Seeder, postgres_url: str, cli: Cli) -> None:
    acme = tenant(pg, "acme")
    pg.execute(f"ALTER TABLE {KEYWORD} ALTER COLUMN account_id DROP NOT NULL")
    pg.execute(f"UPDATE {KEYWORD} SET account_id = NULL WHERE id = :k", k=acme.keyword)

    result = cli("migrate", "apply", "--database-url", postgres_url)

    assert result.code == ExitCode.FINDINGS
    assert (f"1 planner_keywords row(s) with account_id NULL (a NULL tenant would skip the "
            f"key) (ids {acme.keyword})") in result.stderr
    assert keys(pg) == {}


def test_to_downgrade_and_status(db_url: str, seed: Seeder, cli: Cli,
                                 two: tuple[Tenant, Tenant]) -> None:
    first = cli("migrate", "apply", "--database-url", db_url, "--to", "account-not-null")
    assert first.code == 0, first.stderr
    assert current(seed) == (ACCOUNT_NOT_NULL,) and keys(seed) == {}
    status = json.loads(cli("migrate", "status", "--database-url", db_url, "-f", "json").stdout)
    assert status["pending"] == [TENANT_KEYS]
    assert [k["link"] for k in status["tenant_keys"]] == LINKS
    assert not any(k["enforced"] for k in status["tenant_keys"])
    assert status["next"]["steps"][0]["revision"] == "tenant-keys"

    assert cli("migrate", "apply", "--database-url", db_url, "--to", "tenant-keys").code == 0
    assert current(seed) == (TENANT_KEYS,) and len(keys(seed)) == 4
    again = cli("migrate", "apply", "--database-url", db_url, "--to", "account-not-null")
    assert again.code == 0 and "nothing to do" in again.stdout

    back = cli("migrate", "downgrade", "--database-url", db_url, "--yes", "-f", "json")
    assert back.code == 0, back.stderr
    assert json.loads(back.stdout)["target"] == "account-not-null"
    assert current(seed) == (ACCOUNT_NOT_NULL,) and keys(seed) == {}
    assert unique_indexes(seed) == {}
    assert cli("migrate", "apply", "--database-url", db_url).code == 0
    base = cli("migrate", "downgrade", "--database-url", db_url, "--to", "base", "--yes")
    assert base.code == 0 and current(seed) == () and keys(seed) == {}
    unknown = cli("migrate", "apply", "--database-url", db_url, "--to", "tenant-key")
    assert unknown.code == ExitCode.USAGE and "unknown revision 'tenant-key'" in unknown.stderr
    ahead = cli("migrate", "downgrade", "--database-url", db_url, "--to", "tenant-keys", "--yes")
    assert ahead.code == ExitCode.USAGE and "not applied" in ahead.stderr


def test_max_steps_then_resume(pg: Seeder, postgres_url: str) -> None:
    tenant(pg, "acme")
    settings = Settings(database_url=postgres_url)
    runner.apply(settings, to="account-not-null")

    partial = runner.apply(settings, max_steps=4)

    assert [s.key for s in partial.steps] == [
        f"unique:{SITE}", f"unique:{CLUSTER}", f"unique:{USER}", "key-add:planner_clusters.site_id"]
    assert partial.stopped is not None and partial.stopped.revision == "tenant-keys"
    assert partial.after == (ACCOUNT_NOT_NULL,), "not recorded before every step is done"
    assert keys(pg) == {"planner_clusters_site_id_account_id_baaccea4_tenant_fk": False}
    rest = runner.apply(settings)
    assert rest.steps[0].key == "key-validate:planner_clusters.site_id" and rest.complete
    assert all(keys(pg).values()) and rest.after == (TENANT_KEYS,)


@pytest.mark.slow
def test_an_interrupted_index_build_is_dropped_and_rebuilt(
        pg: Seeder, postgres_url: str, cli: Cli) -> None:
    acme = tenant(pg, "acme")
    runner.apply(Settings(database_url=postgres_url), to="account-not-null")
    # An open write transaction on the clusters: CREATE INDEX CONCURRENTLY waits for it.
    writer = psycopg.connect(postgres_url, application_name="open-writer")
    writer.execute(f"UPDATE {CLUSTER} SET volume = volume WHERE id = %s", (acme.cluster,))
    writer_pid = writer.info.backend_pid
    try:
        stuck = cli("migrate", "apply", "--database-url", postgres_url,
                    "--lock-timeout-ms", "300", "--lock-retries", "1")
    finally:
        writer.close()

    assert stuck.code == ExitCode.LOCKED, stuck.stderr
    assert "build UNIQUE (id, account_id) on planner_clusters concurrently" in stuck.stderr
    assert f"blocked by: pid {writer_pid} (open-writer, idle in transaction" in stuck.stderr
    leftover = {n: v for n, v in unique_indexes(pg).items() if n.startswith(CLUSTER)}
    assert list(leftover.values()) == [False], "the interrupted build left an INVALID index"

    resumed = runner.apply(Settings(database_url=postgres_url))

    assert resumed.steps[0].title.startswith("drop the INVALID index of an interrupted build")
    assert all(unique_indexes(pg).values()) and len(unique_indexes(pg)) == 3
    assert all(keys(pg).values()) and resumed.after == (TENANT_KEYS,)


@pytest.mark.slow
def test_lock_diagnosis_names_only_the_real_blocker(pg: Seeder, postgres_url: str) -> None:
    """A writer that queued behind the waiting ALTER, then held its lock, is not a blocker."""
    acme = tenant(pg, "acme")
    blocker = psycopg.connect(postgres_url, application_name="real-blocker")
    blocker.execute(f"LOCK TABLE {USER} IN ACCESS SHARE MODE")
    blocker_pid = blocker.info.backend_pid
    innocent = psycopg.connect(postgres_url, application_name="innocent-writer")
    settings = Settings(database_url=postgres_url, lock_timeout_ms=600, lock_retries=1)
    outcome: dict[str, BaseException] = {}

    def migrate() -> None:
        try:
            runner.apply(settings)
        except LockBusy as error:
            outcome["error"] = error

    def write_and_linger() -> None:
        innocent.execute(f"UPDATE {USER} SET last_login = now() WHERE id = %s", (acme.owner,))
        time.sleep(1.0)
        innocent.commit()

    migration = threading.Thread(target=migrate)
    migration.start()
    wait_for(lambda: pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name "
                               "= 'igny8ctl' AND wait_event_type = 'Lock'"))
    lingering = threading.Thread(target=write_and_linger)
    lingering.start()
    migration.join(30)
    lingering.join(30)
    blocker.close()
    innocent.close()

    error = outcome["error"]
    assert isinstance(error, LockBusy)
    assert [h.pid for h in error.holders] == [blocker_pid]
    assert "innocent-writer" not in error.message and "real-blocker" in error.message
    assert error.to_dict()["holders"][0]["application"] == "real-blocker"


def test_statement_timeout_names_the_step_and_the_setting(pg: Seeder, postgres_url: str,
                                                          cli: Cli) -> None:
    acme = tenant(pg, "acme")
    pg.execute(f"INSERT INTO {KEYWORD} (keyword, volume, difficulty, intent, status, created_at, "
               "updated_at, account_id, cluster_id, site_id) SELECT 'k' || n, 1, 1, "
               f"'informational', 'pending', now(), now(), {acme.account}, {acme.cluster}, "
               f"{acme.site} FROM generate_series(1, 20000) n")
    assert cli("migrate", "apply", "--database-url", postgres_url, "--to",
               "account-not-null").code == 0

    result = cli("migrate", "apply", "--database-url", postgres_url,
                 "--lock-timeout-ms", "1", "--statement-timeout-ms", "2")

    assert result.code == ExitCode.DATABASE, result.stderr
    assert "igny8ctl: error: step '" in result.stderr
    assert "was cancelled by statement_timeout (2 ms, statement_timeout_ms)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_exclusions_leave_a_link_out(db_url: str, seed: Seeder, cli: Cli,
                                     two: tuple[Tenant, Tenant], tmp_path: Path) -> None:
    acme, globex = two
    config = tmp_path / "igny8ctl.toml"
    config.write_text('[migrate]\ntenant_keys_exclude = ["planner_keywords.site_id"]\n')

    assert cli("migrate", "apply", "--database-url", db_url, "--config", str(config)).code == 0

    assert len(keys(seed)) == 3
    write(seed, f"UPDATE {KEYWORD} SET site_id = :s WHERE id = :k", s=globex.site,
          k=acme.keyword)
    status = json.loads(cli("migrate", "status", "--database-url", db_url, "--config",
                            str(config), "-f", "json").stdout)
    assert status["excluded_links"] == ["planner_keywords.site_id"]
    check = cli("check", "--database-url", db_url, "--config", str(config), "-c",
                "schema.tenant-keys", "--fail-on", "warning")
    assert check.code == 0, check.stdout
    config.write_text('[migrate]\ntenant_keys_exclude = ["planner_keywords.nope"]\n')
    wrong = cli("migrate", "apply", "--database-url", db_url, "--config", str(config))
    assert wrong.code == ExitCode.USAGE
    assert "migrate.tenant_keys_exclude names no link: planner_keywords.nope" in wrong.stderr


def test_apply_restores_a_key_dropped_by_hand(db_url: str, seed: Seeder, cli: Cli,
                                              two: tuple[Tenant, Tenant]) -> None:
    assert cli("migrate", "apply", "--database-url", db_url).code == 0
    if seed.dialect == "postgresql":
        seed.execute(f"ALTER TABLE {KEYWORD} DROP CONSTRAINT "
                     "planner_keywords_cluster_id_account_id_52eb9be9_tenant_fk")
    else:
        seed.execute(f"DROP INDEX {CLUSTER}_id_account_id_f092935a{UNIQUE_SUFFIX}")
    check = cli("check", "--database-url", db_url, "-c", "schema.tenant-keys",
                "--fail-on", "warning")
    assert check.code == ExitCode.FINDINGS and "planner_keywords.cluster_id" in check.stdout
    drifted = json.loads(cli("migrate", "status", "--database-url", db_url, "-f", "json").stdout)
    assert drifted["revisions"][1]["drifted"] and drifted["pending"] == []

    repaired = cli("migrate", "apply", "--database-url", db_url)

    assert repaired.code == 0, repaired.stderr
    assert "tenant-keys:" in repaired.stdout
    assert cli("check", "--database-url", db_url, "-c", "schema.tenant-keys",
               "--fail-on", "warning").code == 0


def test_sqlite_rebuild_changes_only_the_keys(sqlite_url: str, cli: Cli) -> None:
    seed = Seeder(sqlite_url)
    try:
        two = tenant(seed, "acme"), tenant(seed, "globex")
        seed.execute(f"DELETE FROM {KEYWORD} WHERE id = :k", k=two[1].keyword)

        def schema() -> dict[str, str]:
            with seed.engine.connect() as connection:
                return dict(connection.exec_driver_sql(
                    "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                    "AND name NOT LIKE 'igny8ctl%'").all())

        def sequences() -> list[tuple[str, int]]:
            with seed.engine.connect() as connection:
                return [tuple(r) for r in connection.exec_driver_sql(
                    "SELECT name, seq FROM sqlite_sequence ORDER BY name")]

        before, rows, sequence = schema(), seed.dump(), sequences()
        assert cli("migrate", "apply", "--database-url", sqlite_url, "--to",
                   "account-not-null").code == 0
        middle = schema()
        assert cli("migrate", "apply", "--database-url", sqlite_url).code == 0
        after = schema()

        changed = {name for name in after if after[name] != middle.get(name)}
        assert changed == {KEYWORD, CLUSTER, ACCOUNT, *(n for n in after if n.endswith(
            UNIQUE_SUFFIX))}
        for table in (KEYWORD, CLUSTER, ACCOUNT):
            added = after[table][len(middle[table]) - 1:-1]
            assert after[table].startswith(middle[table][:-1]) and added.startswith(
                ", CONSTRAINT "), "Django's definition kept verbatim, the key appended"
            assert "MATCH SIMPLE DEFERRABLE INITIALLY DEFERRED" in added
        assert sequences() == sequence
        assert {k: v for k, v in seed.dump().items() if not k.startswith("igny8ctl")} == {
            k: v for k, v in rows.items() if not k.startswith("igny8ctl")}
        with seed.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []

        assert cli("migrate", "downgrade", "--database-url", sqlite_url, "--yes").code == 0
        assert schema() == middle
        assert cli("migrate", "downgrade", "--database-url", sqlite_url, "--yes").code == 0
        assert schema() == before
    finally:
        seed.close()


def test_offline_script_runs_through_psql(pg: Seeder, postgres_url: str, cli: Cli) -> None:
    acme = tenant(pg, "acme")
    globex = tenant(pg, "globex")
    script = cli("migrate", "apply", "--sql").stdout
    assert not version_table_exists(pg), "--sql never connects"
    transactions = script.split("BEGIN;")
    assert all("CONCURRENTLY" not in t.split("COMMIT;")[0] for t in transactions[1:])
    assert script.count("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS") == 3

    pg.execute(f"UPDATE {KEYWORD} SET site_id = :s WHERE id = :k", s=globex.site, k=acme.keyword)
    refused = psql(postgres_url, script)
    assert refused.returncode != 0
    assert "repair them: igny8ctl fix cross-tenant" in refused.stderr
    assert keys(pg) == {}

    pg.execute(f"UPDATE {KEYWORD} SET site_id = :s WHERE id = :k", s=acme.site, k=acme.keyword)
    tenant_keys = script.split(f"-- Running upgrade {ACCOUNT_NOT_NULL} -> {TENANT_KEYS}")[1]
    for _ in range(2):
        done = psql(postgres_url, tenant_keys)
        assert done.returncode == 0, done.stderr
        assert len(keys(pg)) == 4 and all(keys(pg).values())
    assert current(pg) == (TENANT_KEYS,)


def psql(url: str, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url],
                          input=script, capture_output=True, text=True)
