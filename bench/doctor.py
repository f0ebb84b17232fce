"""Time ``doctor user`` and ``check --tenant`` (whole processes) on a small and a large database.

Both databases hold tenants of the same size (20 users, 2 sites, 4 clusters, 40 keywords of
which half are pending), 1% orphaned users and a few dangling ones with the foreign key
dropped, like ``bench/checks.py``; only the number of tenants differs. A cost that grows
with the tenant and not with the database stays flat between the two: goal a ratio of at
most 1.2 (large / small), and under 1/5 of a full ``check`` of the large database, measured
in the same run. The support case is a tenant's owner looked up by exact username.

    .venv/bin/python bench/doctor.py [--sizes 10000,1000000] [--repeats 5] [--keep] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from common import IGNY8CTL, create_database, drop_database, run, run_sql, timed, url

USERS_PER_TENANT = 20


def database_name(users: int) -> str:
    return f"igny8ctl_bench_doctor_{users}"


def build(users: int) -> str:
    database_url = create_database(database_name(users))
    accounts = users // USERS_PER_TENANT
    sites, clusters, keywords = accounts * 2, accounts * 4, accounts * 40
    print(f"building: {users:,} users, {accounts:,} tenants, {keywords:,} keywords ...",
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
        f"now(), n * {USERS_PER_TENANT} - {USERS_PER_TENANT - 1}, 1 "
        f"FROM generate_series(1, {accounts}) n",
        # every 100th user orphaned, every 3331st pointing past the last account
        f"INSERT INTO igny8_core_auth_user (id, password, is_superuser, username, first_name, "
        f"last_name, email, is_staff, is_active, date_joined, role, account_id) "
        f"OVERRIDING SYSTEM VALUE SELECT n, '!', false, 'user' || n, '', '', "
        f"'user' || n || '@example.com', false, true, now(), "
        f"CASE WHEN n % {USERS_PER_TENANT} = 1 THEN 'owner' ELSE 'editor' END, "
        f"CASE WHEN n % 100 = 50 THEN NULL WHEN n % 3331 = 7 THEN {accounts} + n "
        f"ELSE (n + {USERS_PER_TENANT - 1}) / {USERS_PER_TENANT} END "
        f"FROM generate_series(1, {users}) n",
        f"INSERT INTO igny8_core_auth_site (id, name, domain, is_active, created_at, "
        f"account_id) OVERRIDING SYSTEM VALUE SELECT n, 'Site ' || n, 'site' || n || "
        f"'.example', true, now(), (n + 1) / 2 FROM generate_series(1, {sites}) n",
        f"INSERT INTO planner_clusters (id, name, description, keywords_count, volume, status, "
        f"created_at, updated_at, account_id, site_id) OVERRIDING SYSTEM VALUE SELECT n, "
        f"'Cluster ' || n, '', 0, 0, 'active', now(), now(), (n + 3) / 4, (n + 1) / 2 "
        f"FROM generate_series(1, {clusters}) n",
        # keyword n: tenant (n + 39) / 40, site (n + 19) / 20; even ones clustered
        f"INSERT INTO planner_keywords (keyword, volume, difficulty, intent, status, "
        f"created_at, updated_at, account_id, cluster_id, site_id) SELECT 'keyword ' || n, 100, "
        f"10, 'informational', CASE WHEN n % 2 = 0 THEN 'clustered' ELSE 'pending' END, now(), "
        f"now(), (n + 39) / 40, CASE WHEN n % 2 = 0 THEN (n + 9) / 10 END, (n + 19) / 20 "
        f"FROM generate_series(1, {keywords}) n",
        "UPDATE planner_clusters c SET keywords_count = k.n, volume = k.v FROM (SELECT "
        "cluster_id, count(*) n, sum(volume) v FROM planner_keywords WHERE cluster_id IS NOT "
        "NULL GROUP BY cluster_id) k WHERE k.cluster_id = c.id",
        "INSERT INTO system_integrationsettings (integration_type, config, is_active, "
        "created_at, updated_at, account_id) SELECT 'openai', jsonb_build_object('api_key', "
        "'sk-bench', 'model', 'gpt-4o-mini'), true, now(), now(), n FROM generate_series(1, "
        f"{accounts}, 3) n",
        transaction=True,
    )
    run_sql(database_url, "VACUUM ANALYZE")
    print(f"built in {time.perf_counter() - started:.0f}s", flush=True)
    return database_url


def target(users: int) -> tuple[str, str]:
    """(owner's username, tenant slug) of a tenant in the middle of the database."""
    tenant = users // USERS_PER_TENANT // 2
    return f"user{(tenant - 1) * USERS_PER_TENANT + 1}", f"account-{tenant}"


def commands(users: int) -> dict[str, list[str]]:
    database_url = url(database_name(users))
    username, slug = target(users)
    machine = ["--database-url", database_url, "--format", "json"]
    return {"doctor user": [IGNY8CTL, "doctor", "user", username, *machine],
            "check --tenant": [IGNY8CTL, "check", "--tenant", slug, *machine],
            "check": [IGNY8CTL, "check", *machine]}


def in_process_ms(command: list[str]) -> float:
    """The run's own duration_ms (without start-up), from its JSON document."""
    completed = subprocess.run(command, capture_output=True, text=True)
    return float(json.loads(completed.stdout)["duration_ms"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,1000000",
                        help="users in the small and the large database")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--reuse", action="store_true",
                        help="use the databases a --keep run left, do not build")
    args = parser.parse_args()
    small, large = (int(size) for size in args.sizes.split(","))
    if not args.reuse:
        for users in (small, large):
            build(users)
    try:
        jobs = {(users, name): command for users in (small, large)
                for name, command in commands(users).items()
                if name != "check" or users == large}
        for command in jobs.values():  # warm the caches once
            run(command, ok_codes=(0, 1))
        times: dict[tuple[int, str], list[float]] = {key: [] for key in jobs}
        for _ in range(args.repeats):  # interleaved, so every job sees the same machine
            for key, command in jobs.items():
                times[key].append(timed(lambda c=command: run(c, ok_codes=(0, 1))))
        inside = {key: in_process_ms(command) for key, command in jobs.items()}
        print(f"\ntenant of {USERS_PER_TENANT} users; small {small:,} users, large {large:,} "
              f"users; repeats {args.repeats} (whole processes, wall time)")
        for (users, name), samples in times.items():
            print(f"  {name:<15} {users:>9,} users: best {min(samples):.3f}s  median "
                  f"{statistics.median(samples):.3f}s  (in process {inside[users, name]:.0f} ms)")
        for label, pick in (("median", statistics.median), ("best", min)):
            full = pick(times[large, "check"])
            for name in ("doctor user", "check --tenant"):
                flat = pick(times[large, name]) / pick(times[small, name])
                share = pick(times[large, name]) / full
                print(f"  {label:<6} {name:<15} large / small: {flat:.2f} (goal <= 1.2);  "
                      f"/ full check at {large:,}: {share:.2f} (goal < 0.20)")
        for name in ("doctor user", "check --tenant"):
            print(f"  in process, start-up aside: {name} / full check at {large:,}: "
                  f"{inside[large, name] / inside[large, 'check']:.2f}")
    finally:
        if not args.keep:
            for users in (small, large):
                drop_database(database_name(users))


if __name__ == "__main__":
    sys.exit(main())
