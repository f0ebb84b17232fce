"""Time ``igny8ctl check`` (the whole process) against hand-written SQL through psql.

Builds a PostgreSQL database with 1,000,000 users (1% orphans, a few hundred dangling ids
with the FK dropped), 50,000 accounts, 100,000 sites, 200,000 clusters and 2,000,000
keywords, then runs both, interleaved, several times each, and prints best and median
times and their ratio (goals: <= 1.25 at 1M users, <= 1.1 at 5M users / 10M keywords).
Also times ``igny8ctl --help`` and ``check`` of the demo sandbox (SQLite) as whole
processes, against the interpreter's own start-up and ``import sqlalchemy`` measured in
the same run (goal: the demo check in <= 0.35 s).

    .venv/bin/python bench/checks.py [--users 1000000] [--keywords 2000000] [--keep]
    .venv/bin/python bench/checks.py --users 5000000 --keywords 10000000   # ~6 min to build
    .venv/bin/python bench/checks.py --demo-only
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import IGNY8CTL, best_of, create_database, drop_database, run, run_sql, timed, url

DATABASE = "igny8ctl_bench_checks"

BASELINE_SQL = """
SELECT count(*) FROM igny8_core_auth_user WHERE account_id IS NULL;
SELECT count(*) FROM igny8_core_auth_user WHERE account_id IN (
  SELECT d.account_id FROM (SELECT DISTINCT account_id FROM igny8_core_auth_user
                            WHERE account_id IS NOT NULL) d
  WHERE NOT EXISTS (SELECT 1 FROM igny8_core_auth_account a WHERE a.id = d.account_id));
SELECT attnotnull FROM pg_attribute
  WHERE attrelid = 'igny8_core_auth_user'::regclass AND attname = 'account_id';
SELECT conname, convalidated FROM pg_constraint
  WHERE conrelid = 'igny8_core_auth_user'::regclass AND contype IN ('c', 'f');
SELECT count(*) FROM igny8_core_auth_account a LEFT JOIN igny8_core_auth_user o
  ON o.id = a.owner_id WHERE a.owner_id IS NOT NULL AND o.id IS NULL;
SELECT count(*) FROM igny8_core_auth_account a JOIN igny8_core_auth_user o
  ON o.id = a.owner_id WHERE o.account_id IS DISTINCT FROM a.id;
SELECT count(*) FROM igny8_core_auth_account WHERE owner_id IS NULL;
SELECT count(*) FROM igny8_core_auth_account a WHERE NOT EXISTS (
  SELECT 1 FROM igny8_core_auth_user u WHERE u.account_id = a.id);
SELECT count(*) FROM planner_keywords k JOIN planner_clusters c ON c.id = k.cluster_id
  WHERE k.account_id <> c.account_id;
SELECT count(*) FROM planner_keywords k JOIN igny8_core_auth_site s ON s.id = k.site_id
  WHERE k.account_id <> s.account_id;
SELECT count(*) FROM planner_clusters c JOIN igny8_core_auth_site s ON s.id = c.site_id
  WHERE c.account_id <> s.account_id;
SELECT count(*) FROM igny8_core_auth_account a WHERE a.slug <> 'aws-admin' AND NOT EXISTS (
  SELECT 1 FROM system_integrationsettings s WHERE s.account_id = a.id
  AND s.integration_type = 'openai' AND s.is_active AND coalesce(s.config->>'api_key', '') <> '');
SELECT count(*) FROM planner_clusters c LEFT JOIN (
  SELECT cluster_id, count(*) n, coalesce(sum(volume), 0) v FROM planner_keywords
  WHERE cluster_id IS NOT NULL GROUP BY cluster_id) k ON k.cluster_id = c.id
  WHERE c.keywords_count <> coalesce(k.n, 0) OR c.volume <> coalesce(k.v, 0);
"""


def build(users: int, keywords: int) -> str:
    database_url = create_database(DATABASE)
    accounts = users // 20
    sites = accounts * 2
    clusters = keywords // 10
    print(f"building: {users:,} users, {accounts:,} accounts, {keywords:,} keywords ...",
          flush=True)
    started = time.perf_counter()
    run_sql(
        database_url,
        "ALTER TABLE igny8_core_auth_user DROP CONSTRAINT "
        "igny8_core_auth_user_account_id_6f983e23_fk_igny8_cor",
        "INSERT INTO igny8_core_auth_plan (name, slug, monthly_credits, max_users, is_active) "
        "VALUES ('Free', 'free', 100, 1, true)",
        f"INSERT INTO igny8_core_auth_account (id, name, slug, credits, status, created_at, "
        f"updated_at, owner_id, plan_id) OVERRIDING SYSTEM VALUE SELECT n, 'Account ' || n, "
        f"CASE WHEN n = 1 THEN 'aws-admin' ELSE 'account-' || n END, 100, 'active', now(), "
        f"now(), n * 20 - 19, 1 FROM generate_series(1, {accounts}) n",
        # 1% orphans (every 100th user), 300 dangling ids (beyond the last account)
        f"INSERT INTO igny8_core_auth_user (id, password, is_superuser, username, first_name, "
        f"last_name, email, is_staff, is_active, date_joined, role, account_id) "
        f"OVERRIDING SYSTEM VALUE SELECT n, '!', false, 'user' || n, '', '', "
        f"'user' || n || '@example.com', false, true, now(), "
        f"CASE WHEN n % 20 = 1 THEN 'owner' ELSE 'editor' END, "
        f"CASE WHEN n % 100 = 50 THEN NULL WHEN n % 3331 = 7 THEN {accounts} + n "
        f"ELSE (n + 19) / 20 END FROM generate_series(1, {users}) n",
        f"INSERT INTO igny8_core_auth_site (id, name, domain, is_active, created_at, account_id) "
        f"OVERRIDING SYSTEM VALUE SELECT n, 'Site ' || n, 'site' || n || '.example', true, "
        f"now(), (n + 1) / 2 FROM generate_series(1, {sites}) n",
        f"INSERT INTO planner_clusters (id, name, description, keywords_count, volume, status, "
        f"created_at, updated_at, account_id, site_id) OVERRIDING SYSTEM VALUE SELECT n, "
        f"'Cluster ' || n, '', 0, 0, 'active', now(), now(), "
        f"(((n - 1) % {sites}) + 2) / 2, ((n - 1) % {sites}) + 1 "
        f"FROM generate_series(1, {clusters}) n",
        f"INSERT INTO planner_keywords (keyword, volume, difficulty, intent, status, created_at, "
        f"updated_at, account_id, cluster_id, site_id) SELECT 'keyword ' || n, 100, 10, "
        f"'informational', 'clustered', now(), now(), "
        f"(((((n - 1) % {clusters}) % {sites}) + 2) / 2), CASE WHEN n % 2 = 0 THEN "
        f"((n - 1) % {clusters}) + 1 END, (((n - 1) % {clusters}) % {sites}) + 1 "
        f"FROM generate_series(1, {keywords}) n",
        "UPDATE planner_clusters c SET keywords_count = k.n, volume = k.v FROM (SELECT "
        "cluster_id, count(*) n, sum(volume) v FROM planner_keywords WHERE cluster_id IS NOT "
        "NULL GROUP BY cluster_id) k WHERE k.cluster_id = c.id",
        "INSERT INTO system_integrationsettings (integration_type, config, is_active, "
        "created_at, updated_at, account_id) SELECT 'openai', jsonb_build_object('api_key', "
        "'sk-bench', 'model', 'gpt-4o-mini'), true, now(), now(), n FROM generate_series(1, "
        f"{accounts}, 3) n",
        "SELECT setval(pg_get_serial_sequence('igny8_core_auth_user', 'id'), "
        "(SELECT max(id) FROM igny8_core_auth_user))",
        transaction=True,
    )
    run_sql(database_url, "VACUUM ANALYZE")
    print(f"built in {time.perf_counter() - started:.0f}s", flush=True)
    return database_url


def demo_startup(repeats: int) -> None:
    """The demo check as a whole process, beside the floor every Python command pays."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "demo.sqlite3"
        run([IGNY8CTL, "demo", str(path)])
        check = [IGNY8CTL, "check", "--database-url", f"sqlite:///{path}", "--format", "json",
                 "--output", "/dev/null"]
        python = [sys.executable, "-c", "pass"]
        sqlalchemy = [sys.executable, "-c", "import sqlalchemy"]
        rounds: dict[str, list[float]] = {"check": [], "python": [], "sqlalchemy": []}
        for _ in range(repeats):
            rounds["python"].append(timed(lambda: run(python)))
            rounds["sqlalchemy"].append(timed(lambda: run(sqlalchemy)))
            rounds["check"].append(timed(lambda: run(check, ok_codes=(1,))))
    best = {name: min(times) for name, times in rounds.items()}
    median = {name: statistics.median(times) for name, times in rounds.items()}
    print(f"\ndemo sandbox (SQLite), repeats={repeats}")
    for name, label in (("python", "python -c pass"), ("sqlalchemy", "import sqlalchemy"),
                        ("check", "igny8ctl check (process)")):
        print(f"{label:<26}: best {best[name]:.3f}s  median {median[name]:.3f}s")
    print(f"ratio check / import sqlalchemy: best {best['check'] / best['sqlalchemy']:.2f}"
          f"   (goal: check <= 0.35 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--keywords", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true",
                        help="use the database a --keep run left (same sizes), do not build")
    parser.add_argument("--demo-only", action="store_true",
                        help="only the demo sandbox's start-up, no PostgreSQL database")
    args = parser.parse_args()
    demo_startup(max(args.repeats, 7))
    if args.demo_only:
        return
    database_url = url(DATABASE) if args.reuse else build(args.users, args.keywords)
    try:
        psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url(DATABASE), "-c",
                BASELINE_SQL]
        tool = [IGNY8CTL, "check", "--database-url", database_url, "--format", "json",
                "--output", "/dev/null"]
        run(tool, ok_codes=(1,))  # warm the cache once
        run(psql)
        rounds = {"psql": [], "igny8ctl": []}  # type: dict[str, list[float]]
        for _ in range(args.repeats):  # interleaved, so both see the same machine
            rounds["psql"].append(best_of(1, lambda: run(psql))[0])
            rounds["igny8ctl"].append(best_of(1, lambda: run(tool, ok_codes=(1,)))[0])
        help_best, help_median = best_of(args.repeats, lambda: subprocess.run(
            [IGNY8CTL, "--help"], capture_output=True, check=True))
        sql_best, sql_median = min(rounds["psql"]), sorted(rounds["psql"])[args.repeats // 2]
        tool_best, tool_median = (min(rounds["igny8ctl"]),
                                  sorted(rounds["igny8ctl"])[args.repeats // 2])
        print(f"\nusers={args.users:,} keywords={args.keywords:,} repeats={args.repeats}")
        print(f"hand-written SQL via psql : best {sql_best:.3f}s  median {sql_median:.3f}s")
        print(f"igny8ctl check (process)  : best {tool_best:.3f}s  median {tool_median:.3f}s")
        print(f"ratio igny8ctl / psql     : best {tool_best / sql_best:.2f}  "
              f"median {tool_median / sql_median:.2f}   "
              f"(goal <= {1.1 if args.users >= 5_000_000 else 1.25})")
        print(f"igny8ctl --help           : best {help_best:.3f}s  median {help_median:.3f}s"
              f"   (goal < 0.3s)")
    finally:
        if not args.keep:
            drop_database(DATABASE)


if __name__ == "__main__":
    sys.exit(main())
