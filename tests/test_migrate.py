"""``igny8ctl migrate`` against real PostgreSQL and SQLite databases built from the shared DDL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from igny8ctl.config import Settings
from igny8ctl.errors import ExitCode
from igny8ctl.migrations import (
    ACCOUNT_NOT_NULL,
    CONNECTION,
    SCRIPT_LOCATION,
    SETTINGS,
    TENANT_KEYS,
    runner,
)
from igny8ctl.migrations.steps import django_name
from tests.conftest import Result
from tests.migrate_support import (
    ACCOUNT,
    DJANGO_FK,
    USER,
    Writer,
    enforcement,
    hold_lock,
    version_table_exists,
    wait_for,
)
from tests.seed import Seeder

Cli = Callable[..., Result]


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Seeder]:
    """A seeder on PostgreSQL only (``seed`` follows the dialect-parametrized ``db_url``)."""
    seeder = Seeder(postgres_url)
    yield seeder
    seeder.close()


@pytest.fixture
def lite(sqlite_url: str) -> Iterator[Seeder]:
    seeder = Seeder(sqlite_url)
    yield seeder
    seeder.close()


def tenant(seed: Seeder) -> int:
    account = seed.account("acme")
    seed.user("maya", account, role="owner")
    seed.user("li", account)
    return account


def assert_enforced(seed: Seeder) -> None:
    state = enforcement(seed)
    assert state.not_null
    assert state.checks == (), "the temporary CHECK is dropped"
    if seed.dialect == "postgresql":
        assert state.foreign_keys == ((DJANGO_FK, True, True),)
    else:
        assert state.foreign_keys == (("(unnamed)", True, True),)
    with pytest.raises(sa.exc.IntegrityError):
        seed.user("nobody", None)


@pytest.mark.parametrize(("table", "columns", "suffix", "expected"), [
    (USER, ["account_id"], "", "igny8_core_auth_user_account_id_6f983e23"),
    (USER, ["account_id"], f"_fk_{ACCOUNT}_id", DJANGO_FK),
    (ACCOUNT, ["owner_id"], f"_fk_{USER}_id",
     "igny8_core_auth_acco_owner_id_53bd7be3_fk_igny8_cor"),
    ("django_admin_log", ["user_id"], f"_fk_{USER}_id",
     "django_admin_log_user_id_c564eba6_fk_igny8_core_auth_user_id"),
])
def test_names_follow_django(table: str, columns: list[str], suffix: str, expected: str) -> None:
    assert django_name(table, columns, suffix) == expected


def test_preflight_refuses_and_changes_nothing(db_url: str, seed: Seeder, cli: Cli) -> None:
    account = tenant(seed)
    seed.user("orphan1")
    seed.user("orphan2")
    seed.dangling_user("ghost", account_id=account + 1000)
    before = enforcement(seed)

    result = cli("migrate", "apply", "--database-url", db_url)

    assert result.code == ExitCode.FINDINGS
    assert "2 user(s) without an account" in result.stderr
    assert "1 user(s) pointing at a missing account" in result.stderr
    assert "igny8ctl fix orphaned-users" in result.stderr
    assert "igny8ctl fix dangling-accounts" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert enforcement(seed) == before
    assert not version_table_exists(seed), "no DDL at all, not even Alembic's table"


def test_apply_after_fix_enforces_and_is_idempotent(db_url: str, seed: Seeder, cli: Cli) -> None:
    account = tenant(seed)
    orphan = seed.user("orphan")
    assert cli("migrate", "apply", "--database-url", db_url).code == ExitCode.FINDINGS
    seed.execute(f"UPDATE {USER} SET account_id = :a WHERE id = :u", a=account, u=orphan)
    rows = seed.rows("user")

    result = cli("migrate", "apply", "--database-url", db_url)

    assert result.code == 0, result.stderr
    assert "applied up to tenant-keys in" in result.stdout
    assert f"(revision {TENANT_KEYS})" in result.stdout
    assert_enforced(seed)
    assert seed.rows("user") == rows
    again = cli("migrate", "apply", "--database-url", db_url)
    assert again.code == 0
    assert "nothing to do" in again.stdout
    status = json.loads(cli("migrate", "status", "--database-url", db_url, "-f", "json").stdout)
    assert status["kind"] == "migrate.status" and status["schema_version"] == 2
    assert status["enforced"] and status["pending"] == [] and status["current"] == [TENANT_KEYS]
    assert all(key["enforced"] for key in status["tenant_keys"])


def test_missing_foreign_key_is_added_not_valid_then_validated(
    postgres_url: str, pg: Seeder, cli: Cli
) -> None:
    account = tenant(pg)
    pg.drop_user_account_fk()
    first = runner.status(Settings(database_url=postgres_url)).revisions[0]
    assert [s.key for s in first.steps] == [
        "check-add", "check-validate", "set-not-null", "fk-add", "fk-validate"]

    assert cli("migrate", "apply", "--database-url", postgres_url).code == 0

    assert_enforced(pg)
    with pytest.raises(sa.exc.IntegrityError):
        pg.user("ghost", account + 1000)


def test_status_reports_counts_and_next_steps(db_url: str, seed: Seeder, cli: Cli) -> None:
    tenant(seed)
    seed.user("orphan")

    table = cli("migrate", "status", "--database-url", db_url)
    document = json.loads(cli("migrate", "status", "--database-url", db_url, "-f", "json").stdout)

    assert table.code == 0
    assert "allows NULL" in table.stdout
    assert "refuse account-not-null until repaired" in table.stdout
    assert document["pending"] == [ACCOUNT_NOT_NULL, TENANT_KEYS] and document["current"] == []
    assert document["nullable"] is True
    assert document["foreign_key"]["validated"] is True
    assert (document["orphaned_users"], document["dangling_users"]) == (1, 0)
    assert document["next"]["refused"] is True
    assert not version_table_exists(seed), "status only reads"


def test_downgrade_asks_then_restores_nullability(db_url: str, seed: Seeder, cli: Cli) -> None:
    tenant(seed)
    assert cli("migrate", "apply", "--database-url", db_url).code == 0

    refused = cli("migrate", "downgrade", "--database-url", db_url)
    assert refused.code == ExitCode.USAGE and "--yes" in refused.stderr
    assert enforcement(seed).not_null

    keys_only = cli("migrate", "downgrade", "--database-url", db_url, "--yes")
    assert keys_only.code == 0, keys_only.stderr
    assert "downgraded to account-not-null" in keys_only.stdout
    assert enforcement(seed).not_null, "one revision back: only the tenant keys went"

    result = cli("migrate", "downgrade", "--database-url", db_url, "--yes")
    assert result.code == 0, result.stderr
    state = enforcement(seed)
    assert not state.not_null
    assert len(state.foreign_keys) == 1 and state.foreign_keys[0][1], "the key stays"
    seed.user("nobody", None)
    assert cli("migrate", "status", "--database-url", db_url).code == 0

    seed.execute(f"DELETE FROM {USER} WHERE account_id IS NULL")
    assert cli("migrate", "apply", "--database-url", db_url).code == 0
    assert_enforced(seed)


def test_sqlite_rebuild_keeps_what_django_created(sqlite_url: str, lite: Seeder) -> None:
    account = tenant(lite)
    lite.execute(f"DELETE FROM {USER} WHERE username = 'li'")
    owner = lite.scalar(f"SELECT id FROM {USER} WHERE username = 'maya'")
    lite.execute(f"UPDATE {ACCOUNT} SET owner_id = :u WHERE id = :a", u=owner, a=account)

    def structure() -> dict[str, object]:
        with lite.engine.connect() as connection:
            def pragma(sql: str) -> list[tuple[object, ...]]:
                return [tuple(row) for row in connection.exec_driver_sql(sql)]
            return {
                "indexes": sorted((name, unique, origin) for _, name, unique, origin, _ in
                                  pragma(f"PRAGMA index_list({USER})")
                                  if not name.startswith("sqlite_autoindex")),
                "unique": sorted(origin for _, _, unique, origin, _ in
                                 pragma(f"PRAGMA index_list({USER})") if unique),
                "keys": pragma(f"PRAGMA foreign_key_list({USER})"),
                "sequence": pragma(f"SELECT seq FROM sqlite_sequence WHERE name = '{USER}'"),
                "violations": pragma("PRAGMA foreign_key_check"),
                "others": pragma("SELECT name, sql FROM sqlite_master WHERE tbl_name != "
                                 f"'{USER}' AND sql IS NOT NULL AND name NOT LIKE 'igny8ctl%' "
                                 "ORDER BY name"),
            }

    before, rows = structure(), lite.rows("user")

    assert runner.apply(Settings(database_url=sqlite_url), to="account-not-null").complete

    assert structure() == before
    assert lite.rows("user") == rows
    sql = lite.scalar(f"SELECT sql FROM sqlite_master WHERE name = '{USER}'")
    assert "AUTOINCREMENT" in sql and "DEFERRABLE INITIALLY DEFERRED" in sql
    assert_enforced(lite)
    with pytest.raises(sa.exc.IntegrityError):
        lite.user("maya", account)


def test_offline_sql_is_the_recipe_in_order(postgres_url: str, pg: Seeder, cli: Cli) -> None:
    tenant(pg)
    result = cli("migrate", "apply", "--sql", "--database-url", postgres_url,
                 "--lock-timeout-ms", "1500", "--to", "account-not-null")
    assert result.code == 0, result.stderr
    script = result.stdout
    assert not version_table_exists(pg), "--sql never touches the database"

    check = django_name(USER, ["account_id"], "_notnull")
    add = script.index(f'ADD CONSTRAINT "{check}" CHECK ("account_id" IS NOT NULL) NOT VALID;')
    validate = script.index(f'VALIDATE CONSTRAINT "{check}";')
    set_not_null = script.index(f'ALTER TABLE "{USER}" ALTER COLUMN "account_id" SET NOT NULL;')
    drop = script.index(f'ALTER TABLE "{USER}" DROP CONSTRAINT "{check}";')
    assert add < validate < set_not_null < drop
    assert len(re.findall(r"(?m)^[^-\n].*SET NOT NULL", script)) == 1
    assert "COMMIT;" in script[add:validate] and "COMMIT;" in script[validate:set_not_null]
    assert "COMMIT;" not in script[set_not_null:drop], "SET NOT NULL and DROP: one transaction"
    for transaction in re.findall(r"BEGIN;\n(.*?)COMMIT;", script, re.S):
        if "ALTER TABLE" in transaction:
            assert transaction.startswith("SET LOCAL lock_timeout = 1500;\n"
                                          "SET LOCAL statement_timeout = 60000;\n")
    assert "DEFERRABLE INITIALLY DEFERRED NOT VALID" in script

    pg.drop_user_account_fk()
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(script.encode())
    assert_enforced(pg)

    assert cli("migrate", "apply", "--sql").code == 0, "no database needed"
    sqlite = cli("migrate", "apply", "--sql", "--database-url", "sqlite:///x.sqlite3")
    assert sqlite.code == ExitCode.USAGE and "PostgreSQL" in sqlite.stderr


def test_offline_script_refuses_orphans_before_any_ddl(postgres_url: str, pg: Seeder) -> None:
    tenant(pg)
    pg.user("orphan")
    script = runner.offline_sql(Settings(database_url=postgres_url), "account-not-null")
    with psycopg.connect(postgres_url, autocommit=True) as connection, \
            pytest.raises(psycopg.errors.RaiseException, match="igny8ctl fix orphaned-users"):
        connection.execute(script.encode())
    assert not version_table_exists(pg) and enforcement(pg).checks == ()


@pytest.mark.slow
def test_interrupted_apply_resumes(postgres_url: str, pg: Seeder, cli: Cli) -> None:
    tenant(pg)
    settings = Settings(database_url=postgres_url)

    first = runner.apply(settings, max_steps=1)
    assert [s.key for s in first.steps] == ["check-add"]
    assert first.stopped is not None and first.stopped.remaining == 2
    state = enforcement(pg)
    assert not state.not_null and len(state.checks) == 1
    assert runner.status(settings).current == ()
    second = cli("migrate", "apply", "--database-url", postgres_url, "--max-steps", "1")
    assert second.code == 0 and "validate the check" in second.stdout
    assert "stopped after 1 step(s) as asked, 1 left in account-not-null" in second.stdout
    assert [c.validated for c in runner.status(settings).account_column.not_null_checks] == [
        True]

    # A real kill: the last step waits for a lock when the process dies.
    (Path("igny8ctl.toml")).write_text("lock_timeout_ms = 300\nlock_retries = 100\n")
    blocker = hold_lock(postgres_url)
    process = subprocess.Popen(
        [sys.executable, "-m", "igny8ctl", "migrate", "apply", "--database-url", postgres_url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: pg.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'igny8ctl' "
            "AND wait_event_type = 'Lock'"))
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        blocker.close()

    result = runner.apply(settings)
    assert [s.key for s in result.steps if s.revision == "account-not-null"] == ["set-not-null"]
    assert result.before == () and result.after == (TENANT_KEYS,)
    assert_enforced(pg)


@pytest.mark.slow
def test_lock_held_elsewhere_gives_up_naming_the_blocker(
    postgres_url: str, pg: Seeder, cli: Cli
) -> None:
    account = tenant(pg)
    lock_timeout = 0.2
    wait_limit = lock_timeout + 0.5
    blocker = hold_lock(postgres_url)
    blocker_pid = blocker.info.backend_pid
    try:
        with Writer(postgres_url, account, wait_limit) as writer:
            result = cli("migrate", "apply", "--database-url", postgres_url,
                         "--lock-timeout-ms", "200", "--lock-retries", "3")
            blocked_writes = writer.writes
    finally:
        blocker.close()

    assert result.code == ExitCode.LOCKED
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert f"blocked by: pid {blocker_pid} (test-blocker, idle in transaction" in message
    assert "last statement LOCK)" in message, "the command word, never its text"
    assert "test-writer" not in message, "a writer queued behind the ALTER is no blocker"
    assert "after 3 attempt(s)" in message and "apply again to resume" in message
    assert enforcement(pg).checks == () and not enforcement(pg).not_null
    assert blocked_writes > 20, "the writer kept writing between attempts"
    assert not writer.lock_waits_over_limit, "no write queued behind the ALTER for long"

    with Writer(postgres_url, account, wait_limit) as writer:
        assert cli("migrate", "apply", "--database-url", postgres_url,
                   "--lock-timeout-ms", "200").code == 0
    assert not writer.lock_waits_over_limit, "the steps hold their locks briefly"
    assert_enforced(pg)


def test_timeouts_are_validated(postgres_url: str, cli: Cli) -> None:
    result = cli("migrate", "apply", "--database-url", postgres_url,
                 "--lock-timeout-ms", "5000", "--statement-timeout-ms", "5000")
    assert result.code == ExitCode.USAGE
    assert "statement_timeout_ms (5000) must be above lock_timeout_ms (5000)" in result.stderr


def test_generate_writes_revisions_that_run(
    postgres_url: str, pg: Seeder, cli: Cli, tmp_path: Path
) -> None:
    tenant(pg)
    out = tmp_path / "versions"
    out.mkdir()
    result = cli("migrate", "generate", "--dir", str(out))
    assert result.code == 0, result.stderr
    first = out / f"{ACCOUNT_NOT_NULL}_user_account_not_null.py"
    second = out / f"{TENANT_KEYS}_tenant_keys.py"
    assert result.stdout.split() == ["wrote", str(first), "wrote", str(second)]
    namespace: dict[str, object] = {}
    exec(compile(first.read_text(), str(first), "exec"), namespace)
    assert namespace["revision"] == ACCOUNT_NOT_NULL and namespace["down_revision"] is None
    assert f'ALTER TABLE "{USER}" ALTER COLUMN "account_id" SET NOT NULL;' in str(
        namespace["SQL"])
    assert isinstance(namespace["SETTINGS"], Settings)
    keys: dict[str, object] = {}
    exec(compile(second.read_text(), str(second), "exec"), keys)
    assert keys["down_revision"] == ACCOUNT_NOT_NULL
    assert "CREATE UNIQUE INDEX CONCURRENTLY" in str(keys["SQL"])
    assert cli("migrate", "generate", "--dir", str(out)).code == ExitCode.USAGE
    assert cli("migrate", "generate", "--dir", str(out), "--force").code == 0

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(out))
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"),
                              poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        config.attributes[CONNECTION] = connection
        command.upgrade(config, "head")
    engine.dispose()
    assert_enforced(pg)
    assert runner.status(Settings(database_url=postgres_url)).next_action.startswith("nothing")


def test_autogenerate_ignores_django_tables(postgres_url: str, pg: Seeder) -> None:
    tenant(pg)
    settings = Settings(database_url=postgres_url)
    runner.apply(settings)
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes[SETTINGS] = settings
    command.check(config)


def test_help_does_not_import_alembic() -> None:
    probe = ("import sys, igny8ctl.cli.main, igny8ctl.cli.migrate; "
             "print(sorted(m for m in sys.modules if m.startswith(('alembic', 'mako'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
