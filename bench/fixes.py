"""Time ``fix orphaned-users --strategy create-account`` against the incident's per-row loop
and against two hand-written set-based statements, on identical copies of one database; then
``fix undo`` of that run against the fix itself (both unbatched, at the default
``statement_timeout``), as ratios against baselines measured in the same run.

The per-row loop (for each orphan: insert an account, update the user, commit) runs on the
first ``--loop-sample`` orphans and is reported as a rate, since at ~500 users/s the whole
set would take minutes.

Each side runs on ``--repeats`` fresh copies, alternating which goes first; the figures are
medians (the machines are noisy).

    cd bench && ../.venv/bin/python fixes.py [--orphans 100000] [--loop-sample 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg
from common import (
    IGNY8CTL,
    create_database,
    drop_database,
    run,
    run_sql,
    tenants_sql,
    timed,
)

TEMPLATE = "igny8ctl_bench_fixes_tpl"

HAND_WRITTEN = (
    "INSERT INTO igny8_core_auth_account (name, slug, credits, status, created_at, "
    "updated_at, owner_id, plan_id) SELECT u.username, 'u-' || u.id, 0, 'active', now(), "
    "now(), u.id, (SELECT id FROM igny8_core_auth_plan WHERE slug = 'free') "
    "FROM igny8_core_auth_user u WHERE u.account_id IS NULL",
    "UPDATE igny8_core_auth_user u SET account_id = a.id, role = 'owner' "
    "FROM igny8_core_auth_account a WHERE a.owner_id = u.id AND u.account_id IS NULL",
)


def build(orphans: int) -> None:
    database_url = create_database(TEMPLATE)
    run_sql(
        database_url,
        *tenants_sql(10_000),
        f"INSERT INTO igny8_core_auth_user (password, is_superuser, username, first_name, "
        f"last_name, email, is_staff, is_active, date_joined, role, account_id) "
        f"SELECT '!', false, 'user' || n, 'First' || n, 'Last', 'user' || n || '@example.com', "
        f"false, true, now(), 'editor', CASE WHEN n <= {orphans} THEN NULL "
        f"ELSE n % 10000 + 1 END FROM generate_series(1, {orphans * 2}) n",
        transaction=True,
    )
    run_sql(database_url, "VACUUM ANALYZE")


def copy(name: str) -> str:
    return create_database(name, template=TEMPLATE)


def per_row_loop(database_url: str, limit: int) -> float:
    """The incident script's shape: one account insert and one user update per orphan."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        plan = connection.execute("SELECT id FROM igny8_core_auth_plan WHERE slug = 'free'"
                                  ).fetchone()
        orphans = connection.execute(
            "SELECT id, username FROM igny8_core_auth_user WHERE account_id IS NULL "
            "ORDER BY id LIMIT %s", (limit,)).fetchall()
        started = time.perf_counter()
        for user_id, username in orphans:
            with connection.transaction():
                row = connection.execute(
                    "INSERT INTO igny8_core_auth_account (name, slug, credits, status, "
                    "created_at, updated_at, owner_id, plan_id) VALUES (%s, %s, 0, 'active', "
                    "now(), now(), %s, %s) RETURNING id",
                    (username, f"u-{user_id}", user_id, plan[0] if plan else None)).fetchone()
                connection.execute(
                    "UPDATE igny8_core_auth_user SET account_id = %s, role = 'owner' "
                    "WHERE id = %s", (row[0] if row else None, user_id))
        return time.perf_counter() - started


def hand_written(database_url: str) -> float:
    return timed(lambda: run_sql(database_url, *HAND_WRITTEN, transaction=True))


def time_fix_and_undo(tool_url: str) -> tuple[float, float, int, int]:
    """(fix seconds, undo seconds, journal rows, orphans left) on one copy."""
    fix_seconds = timed(lambda: run(
        [IGNY8CTL, "fix", "orphaned-users", "--strategy", "create-account", "--apply",
         "--yes", "--format", "json", "--database-url", tool_url]))
    with psycopg.connect(tool_url) as connection:
        left = connection.execute("SELECT count(*) FROM igny8_core_auth_user "
                                  "WHERE account_id IS NULL").fetchone()
        journal = connection.execute("SELECT count(*) FROM igny8ctl_journal").fetchone()
        run_id = connection.execute("SELECT run_id FROM igny8ctl_runs "
                                    "ORDER BY started_at DESC LIMIT 1").fetchone()
    assert run_id is not None and left is not None and journal is not None, "no run recorded"
    undo_seconds = timed(lambda: run(
        [IGNY8CTL, "fix", "undo", str(run_id[0]), "--apply", "--yes", "--format", "json",
         "--database-url", tool_url]))
    with psycopg.connect(tool_url) as connection:
        restored = connection.execute("SELECT count(*) FROM igny8_core_auth_user "
                                      "WHERE account_id IS NULL").fetchone()
    assert restored is not None and restored[0] == journal[0] // 2, "undo restored otherwise"
    return fix_seconds, undo_seconds, int(journal[0]), int(left[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orphans", type=int, default=100_000)
    parser.add_argument("--loop-sample", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3,
                        help="fresh copies per side; medians are reported")
    args = parser.parse_args()
    print(f"building {args.orphans:,} orphans beside {args.orphans:,} users ...", flush=True)
    build(args.orphans)
    sql_name, tool_name, loop_name = (
        "igny8ctl_bench_fix_sql", "igny8ctl_bench_fix_tool", "igny8ctl_bench_fix_loop")
    sql_times: list[float] = []
    fix_times: list[float] = []
    undo_times: list[float] = []
    try:
        for repeat in range(args.repeats):
            # Alternate the order, so neither side always runs on a warmer machine.
            for side in ("sql", "tool") if repeat % 2 == 0 else ("tool", "sql"):
                if side == "sql":
                    sql_times.append(hand_written(copy(sql_name)))
                else:
                    fix_seconds, undo_seconds, journal, left = time_fix_and_undo(
                        copy(tool_name))
                    fix_times.append(fix_seconds)
                    undo_times.append(undo_seconds)
            print(f"  repeat {repeat + 1}: hand-written {sql_times[-1]:.2f}s, fix "
                  f"{fix_times[-1]:.2f}s, undo {undo_times[-1]:.2f}s", flush=True)
        loop_seconds = per_row_loop(copy(loop_name), args.loop_sample)
        sql_seconds = statistics.median(sql_times)
        tool_seconds = statistics.median(fix_times)
        undo_seconds = statistics.median(undo_times)
        loop_rate = args.loop_sample / loop_seconds
        tool_rate = args.orphans / tool_seconds
        print(f"\norphans={args.orphans:,}, medians of {args.repeats} fresh copies each")
        print(f"hand-written SQL (2 statements) : {sql_seconds:7.2f}s  "
              f"{args.orphans / sql_seconds:9.0f} users/s")
        print(f"igny8ctl fix --apply (process)  : {tool_seconds:7.2f}s  {tool_rate:9.0f} users/s"
              f"  (journal rows: {journal:,}, orphans left: {left})")
        print(f"igny8ctl fix undo --apply       : {undo_seconds:7.2f}s  "
              f"(orphans after undo: {args.orphans:,})")
        print(f"per-row loop ({args.loop_sample:,} orphans)     : {loop_seconds:7.2f}s  "
              f"{loop_rate:9.0f} users/s")
        print(f"igny8ctl vs per-row loop        : {tool_rate / loop_rate:6.1f}x faster")
        print(f"hand-written SQL vs per-row loop: "
              f"{args.orphans / sql_seconds / loop_rate:6.1f}x faster")
        print(f"igny8ctl vs hand-written SQL    : {tool_seconds / sql_seconds:6.2f}x the time "
              f"(best {min(fix_times) / min(sql_times):.2f}x; goal <= 2x)")
        print(f"undo vs the fix                 : {undo_seconds / tool_seconds:6.2f}x the time "
              f"(goal <= 1.5x)")
    finally:
        for name in [sql_name, tool_name, loop_name, TEMPLATE]:
            drop_database(name)


if __name__ == "__main__":
    main()
