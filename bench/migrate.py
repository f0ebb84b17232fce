"""How long writers stall while user.account_id becomes NOT NULL: the naive ALTER TABLE
against ``igny8ctl migrate apply``, on identical copies of one database, at two sizes.

A writer process keeps inserting and updating users (autocommit, one statement at a time,
each one timed) while the migration runs; its worst and p99 latencies are the stall the
application would see. The naive ALTER holds ACCESS EXCLUSIVE while it scans every row;
igny8ctl validates a NOT VALID check first (writers keep going) so SET NOT NULL skips the scan.

The writer runs with ``synchronous_commit = off`` so that its latencies measure lock waits,
not this machine's fsync (pass ``--fsync`` to keep it on).

    .venv/bin/python bench/migrate.py [--sizes 500000,2000000] [--fsync]
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

import psycopg
from common import IGNY8CTL, admin, create_database, drop_database, run_sql, tenants_sql, url

ACCOUNTS = 10_000
WRITER_PAUSE_S = 0.002
WRITER_LIMIT_S = 180.0
SETTLE_S = 1.0
NAIVE = "ALTER TABLE igny8_core_auth_user ALTER COLUMN account_id SET NOT NULL"


@dataclass(frozen=True)
class Outcome:
    label: str
    duration_s: float
    latencies: list[float]
    baseline: list[float]
    detail: str = ""

    @property
    def worst_ms(self) -> float:
        return max(self.latencies) * 1000

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def build(template: str, users: int) -> None:
    database_url = create_database(template)
    run_sql(
        database_url,
        *tenants_sql(ACCOUNTS),
        "INSERT INTO igny8_core_auth_user (password, is_superuser, username, first_name, "
        "last_name, email, is_staff, is_active, date_joined, role, account_id) "
        "SELECT '!', false, 'user' || n, 'First', 'Last', 'user' || n || '@example.com', "
        f"false, true, now(), 'editor', 1 + n % {ACCOUNTS} FROM generate_series(1, {users}) n",
        "VACUUM ANALYZE",
    )


def copy(template: str, name: str) -> str:
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    return url(name)


def writer(database_url: str, users: int, fsync: bool,
           stop: multiprocessing.synchronize.Event, results: Connection) -> None:
    """Autocommit INSERTs and UPDATEs, alternately, timing each; bounded in time.

    Sends back (monotonic start, latency) pairs; CLOCK_MONOTONIC is shared by processes.
    """
    latencies: list[tuple[float, float]] = []
    deadline = time.monotonic() + WRITER_LIMIT_S
    with psycopg.connect(database_url, autocommit=True, application_name="bench-writer") as db:
        if not fsync:
            db.execute("SET synchronous_commit = off")
        n = 0
        while not stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            if n % 2:
                db.execute("UPDATE igny8_core_auth_user SET last_login = now() WHERE id = %s",
                           (random.randint(1, users),))
            else:
                db.execute(
                    "INSERT INTO igny8_core_auth_user (password, is_superuser, username, "
                    "first_name, last_name, email, is_staff, is_active, date_joined, role, "
                    "account_id) VALUES ('!', false, %s, '', '', '', false, true, now(), "
                    "'editor', %s)", (f"bench-writer-{n}", random.randint(1, ACCOUNTS)))
            latencies.append((started, time.monotonic() - started))
            n += 1
            time.sleep(WRITER_PAUSE_S)
    results.send(latencies)


def under_load(label: str, database_url: str, users: int, fsync: bool,
               migrate: Callable[[], str]) -> Outcome:
    """Run ``migrate`` while the writer runs, with a settle period before and after."""
    stop = multiprocessing.Event()
    receive, send = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.Process(target=writer,
                                      args=(database_url, users, fsync, stop, send))
    process.start()
    time.sleep(SETTLE_S)
    started = time.monotonic()
    detail = migrate()
    duration = time.monotonic() - started
    time.sleep(SETTLE_S)
    stop.set()
    timed = receive.recv()
    process.join()
    return Outcome(label, duration, [latency for _, latency in timed],
                   [latency for at, latency in timed if at + latency < started], detail)


def naive(database_url: str) -> str:
    run_sql(database_url, NAIVE)
    return ""


def igny8ctl(database_url: str) -> str:
    completed = subprocess.run([IGNY8CTL, "migrate", "apply", "--database-url", database_url],
                               capture_output=True, text=True)
    if completed.returncode:
        raise SystemExit(f"igny8ctl migrate apply exited {completed.returncode}: "
                         f"{completed.stderr.strip()}")
    steps = re.findall(r"^\s+\d+\. (.+?)\s+(\d+) ms", completed.stdout, re.M)
    return ", ".join(f"{title} {ms} ms" for title, ms in steps)


def measure(users: int, fsync: bool) -> tuple[Outcome, Outcome]:
    template = f"igny8ctl_bench_migrate_{users}_tpl"
    copies = [f"igny8ctl_bench_migrate_{users}_naive", f"igny8ctl_bench_migrate_{users}_tool"]
    try:
        started = time.perf_counter()
        build(template, users)
        naive_url, tool_url = (copy(template, name) for name in copies)
        print(f"\n{users:,} users (built and copied in {time.perf_counter() - started:.0f} s)")
        outcomes = (under_load("naive ALTER ... SET NOT NULL", naive_url, users, fsync,
                               lambda: naive(naive_url)),
                    under_load("igny8ctl migrate apply", tool_url, users, fsync,
                               lambda: igny8ctl(tool_url)))
    finally:
        for name in (*copies, template):
            drop_database(name)
    print(f"  {'':30} {'duration':>10} {'writer max':>11} {'writer p99':>11} {'writes':>7} "
          f"{'max before':>11}")
    for outcome in outcomes:
        print(f"  {outcome.label:30} {outcome.duration_s * 1000:>7.0f} ms "
              f"{outcome.worst_ms:>8.1f} ms {outcome.p99_ms:>8.1f} ms "
              f"{len(outcome.latencies):>7} {max(outcome.baseline) * 1000:>8.1f} ms")
    print(f"  igny8ctl steps: {outcomes[1].detail}")
    print(f"  worst writer stall, naive / igny8ctl: "
          f"{outcomes[0].worst_ms / outcomes[1].worst_ms:.0f}x")
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500000,2000000",
                        help="comma-separated user counts (default: 500000,2000000)")
    parser.add_argument("--fsync", action="store_true",
                        help="keep synchronous_commit on for the writer")
    arguments = parser.parse_args()
    sizes = [int(size) for size in arguments.sizes.split(",")]
    print(f"writer: autocommit INSERT/UPDATE every {WRITER_PAUSE_S * 1000:.0f} ms, "
          f"synchronous_commit {'on' if arguments.fsync else 'off'}; "
          "'max before' is its worst before the migration started")
    results = {size: measure(size, arguments.fsync) for size in sizes}
    worst = {size: tool.worst_ms for size, (_, tool) in results.items()}
    largest = max(sizes)
    naive_worst, tool_worst = results[largest][0].worst_ms, worst[largest]
    print("\ngoals")
    print(f"  igny8ctl worst stall under 50 ms at {largest:,}: {tool_worst:.1f} ms "
          f"{'ok' if tool_worst < 50 else 'MISSED'}")
    print(f"  at least 10x below the naive ALTER: {naive_worst / tool_worst:.0f}x "
          f"{'ok' if naive_worst >= 10 * tool_worst else 'MISSED'}")
    print("  igny8ctl worst stall by size: " + ", ".join(
        f"{size:,}: {ms:.1f} ms" for size, ms in sorted(worst.items()))
        + "; naive: " + ", ".join(f"{size:,}: {results[size][0].worst_ms:.0f} ms"
                                  for size in sorted(sizes)))


if __name__ == "__main__":
    main()
