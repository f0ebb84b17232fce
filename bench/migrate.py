"""How long the application's writers stall while the database learns to enforce tenancy.

Three measurements, each against its naive baseline on an identical copy of one database,
while a writer process keeps writing (autocommit, one statement at a time, each timed):

* ``not-null``: ``user.account_id`` NOT NULL — the naive ``ALTER TABLE … SET NOT NULL``
  (a scan under ACCESS EXCLUSIVE) against ``igny8ctl migrate apply --to account-not-null``;
  the writer inserts and updates users.
* ``tenant-keys``: the composite tenant keys — a naive ``CREATE UNIQUE INDEX`` and
  ``ALTER TABLE … ADD FOREIGN KEY`` (validated in one statement, blocking writers) against
  ``igny8ctl migrate apply``; the writer inserts and updates keywords and clusters.
* ``django``: Django's own ``manage.py migrate`` of the user's tenant column made
  ``null=False`` (``makemigrations``): the unrewritten migration (drop and re-add the foreign
  key) against the one ``igny8ctl migrate django-state`` rewrote; the writer writes users.

The writer's worst and p99 latencies are the stall the application would see; "max before"
is its worst before the migration started, its own noise. The writer runs with
``synchronous_commit = off`` so latencies measure lock waits, not fsync (``--fsync`` keeps it).

    .venv/bin/python bench/migrate.py [--only not-null,tenant-keys,django]
        [--users 500000,2000000] [--keywords 1000000,4000000] [--django-users 1000000] [--fsync]
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.synchronize
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import psycopg
from common import IGNY8CTL, ROOT, admin, create_database, drop_database, run_sql, tenants_sql, url

from igny8ctl.catalog import TenantLink
from igny8ctl.dialects import quote_identifier as quote
from igny8ctl.migrations.tenant_keys import key_name, unique_name

ACCOUNTS = 10_000
KEYWORDS_PER_CLUSTER = 20
WRITER_PAUSE_S = 0.002
WRITER_LIMIT_S = 300.0
SETTLE_S = 1.0
#: Two runs of the same idle writer differ by this much in their worst latency here.
NOISE_SPREAD = 1.25
NAIVE_NOT_NULL = "ALTER TABLE igny8_core_auth_user ALTER COLUMN account_id SET NOT NULL"
USER, ACCOUNT, SITE = "igny8_core_auth_user", "igny8_core_auth_account", "igny8_core_auth_site"
CLUSTER, KEYWORD = "planner_clusters", "planner_keywords"
LINKS = [
    TenantLink(CLUSTER, ("site_id", "account_id"), SITE, ("id", "account_id")),
    TenantLink(KEYWORD, ("cluster_id", "account_id"), CLUSTER, ("id", "account_id")),
    TenantLink(KEYWORD, ("site_id", "account_id"), SITE, ("id", "account_id")),
    TenantLink(ACCOUNT, ("owner_id", "id"), USER, ("id", "account_id")),
]
DJANGO_PROJECT = ROOT / "tests" / "django_igny8"
NULLABLE = "null=True, blank=True, related_name=\"users\""
MIGRATION = "igny8_core/auth/migrations/0002_user_account_required.py"


@dataclass(frozen=True)
class Outcome:
    label: str
    duration_s: float
    latencies: list[float]
    baseline: list[float]
    detail: str = ""
    #: The slowest writes: (offset from the migration's start in s, latency in s, statement).
    worst: tuple[tuple[float, float, str], ...] = ()

    @property
    def worst_ms(self) -> float:
        return max(self.latencies) * 1000

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000

    @property
    def noise_ms(self) -> float:
        return max(self.baseline) * 1000


# -- the writer ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """What the writer writes: users, or keywords and clusters of one tenant at a time."""

    kind: str
    rows: int
    clusters: int = 0


def writer(database_url: str, workload: Workload, fsync: bool,
           stop: multiprocessing.synchronize.Event, results: Connection) -> None:
    """Autocommit writes, each timed; bounded in time. Sends back (start, latency) pairs
    (CLOCK_MONOTONIC is shared by processes)."""
    latencies: list[tuple[float, float, int]] = []
    deadline = time.monotonic() + WRITER_LIMIT_S
    with psycopg.connect(database_url, autocommit=True, application_name="bench-writer") as db:
        if not fsync:
            db.execute("SET synchronous_commit = off")
        n = 0
        while not stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            if workload.kind == "users":
                _write_user(db, workload, n)
            else:
                _write_tenant(db, workload, n)
            latencies.append((started, time.monotonic() - started, n))
            n += 1
            time.sleep(WRITER_PAUSE_S)
    results.send(latencies)


def _write_user(db: psycopg.Connection, workload: Workload, n: int) -> None:
    if n % 2:
        db.execute(f"UPDATE {USER} SET last_login = now() WHERE id = %s",
                   (random.randint(1, workload.rows),))
        return
    db.execute(
        f"INSERT INTO {USER} (password, is_superuser, username, first_name, last_name, email, "
        "is_staff, is_active, date_joined, role, account_id) VALUES ('!', false, %s, '', '', "
        "'', false, true, now(), 'editor', %s)",
        (f"bench-writer-{os.getpid()}-{n}", random.randint(1, ACCOUNTS)))


def _write_tenant(db: psycopg.Connection, workload: Workload, n: int) -> None:
    """Keyword insert, keyword re-clustered within its tenant, cluster insert, cluster update."""
    cluster = random.randint(1, workload.clusters)
    account = 1 + cluster % ACCOUNTS
    step = n % 4
    if step == 0:
        db.execute(
            f"INSERT INTO {KEYWORD} (keyword, volume, difficulty, intent, status, created_at, "
            "updated_at, account_id, cluster_id, site_id) VALUES (%s, 10, 1, 'informational', "
            "'pending', now(), now(), %s, %s, %s)",
            (f"bench-writer-{os.getpid()}-{n}", account, cluster, account))
    elif step == 1:
        keyword = random.randint(1, workload.rows)
        home = 1 + keyword % workload.clusters
        other = home + ACCOUNTS if home + ACCOUNTS <= workload.clusters else home - ACCOUNTS
        db.execute(f"UPDATE {KEYWORD} SET cluster_id = %s, updated_at = now() WHERE id = %s",
                   (random.choice((home, other)), keyword))
    elif step == 2:
        db.execute(
            f"INSERT INTO {CLUSTER} (name, description, keywords_count, volume, status, "
            "created_at, updated_at, account_id, site_id) VALUES (%s, '', 0, 0, 'active', now(), "
            "now(), %s, %s)", (f"bench-writer-{os.getpid()}-{n}", account, account))
    else:
        db.execute(f"UPDATE {CLUSTER} SET volume = volume + 1, updated_at = now() WHERE id = %s",
                   (cluster,))


def under_load(label: str, database_url: str, workload: Workload, fsync: bool,
               migrate: Callable[[], str]) -> Outcome:
    """Run ``migrate`` while the writer runs, with a settle period before and after."""
    stop = multiprocessing.Event()
    receive, send = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.Process(target=writer,
                                      args=(database_url, workload, fsync, stop, send))
    process.start()
    time.sleep(SETTLE_S)
    started = time.monotonic()
    detail = migrate()
    duration = time.monotonic() - started
    time.sleep(SETTLE_S)
    stop.set()
    while not receive.poll(0.5):
        if not process.is_alive():
            raise SystemExit(f"the writer failed (exit code {process.exitcode})")
    timed = receive.recv()
    process.join()
    kinds = (("insert user", "update user") if workload.kind == "users" else
             ("insert keyword", "re-cluster keyword", "insert cluster", "update cluster"))
    worst = sorted(timed, key=lambda row: row[1], reverse=True)[:3]
    return Outcome(label, duration, [latency for _, latency, _ in timed],
                   [latency for at, latency, _ in timed if at + latency < started], detail,
                   tuple((at - started, latency, kinds[n % len(kinds)])
                         for at, latency, n in worst))


def report(title: str, outcomes: tuple[Outcome, Outcome]) -> None:
    print(f"  {'':34} {'duration':>10} {'writer max':>11} {'writer p99':>11} {'writes':>7} "
          f"{'max before':>11}")
    for outcome in outcomes:
        print(f"  {outcome.label:34} {outcome.duration_s * 1000:>7.0f} ms "
              f"{outcome.worst_ms:>8.1f} ms {outcome.p99_ms:>8.1f} ms "
              f"{len(outcome.latencies):>7} {outcome.noise_ms:>8.1f} ms")
    if outcomes[1].detail:
        print(f"  steps: {outcomes[1].detail}")
    for outcome in outcomes:
        print(f"  slowest writes, {outcome.label}: " + ", ".join(
            f"{latency * 1000:.0f} ms {kind} at {offset * 1000:+.0f} ms"
            for offset, latency, kind in outcome.worst))
    naive, ours = outcomes
    print(f"  {title}: worst writer stall, baseline / igny8ctl: "
          f"{naive.worst_ms / ours.worst_ms:.1f}x; igny8ctl / the writer's own noise: "
          f"{ours.worst_ms / max(ours.noise_ms, 0.001):.2f}x")


def copy(template: str, name: str) -> str:
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    return url(name)


def igny8ctl(*args: str) -> str:
    completed = subprocess.run([IGNY8CTL, *args], capture_output=True, text=True,
                               env={**os.environ, "COLUMNS": "300"})
    if completed.returncode:
        raise SystemExit(f"igny8ctl {' '.join(args[:2])} exited {completed.returncode}: "
                         f"{completed.stderr.strip()}")
    steps = re.findall(r"^\s+\d+\. [\w-]+: (.+?)\s+(\d+) ms", completed.stdout, re.M)
    return "; ".join(f"{title} {ms} ms" for title, ms in steps)


# -- not-null ------------------------------------------------------------------------------


def build_users(template: str, users: int) -> None:
    database_url = create_database(template)
    run_sql(
        database_url,
        *tenants_sql(ACCOUNTS),
        f"INSERT INTO {USER} (password, is_superuser, username, first_name, last_name, email, "
        "is_staff, is_active, date_joined, role, account_id) "
        "SELECT '!', false, 'user' || n, 'First', 'Last', 'user' || n || '@example.com', "
        f"false, true, now(), 'editor', 1 + n % {ACCOUNTS} FROM generate_series(1, {users}) n",
        "VACUUM ANALYZE",
    )


def measure_not_null(users: int, fsync: bool) -> tuple[Outcome, Outcome]:
    template = f"igny8ctl_bench_migrate_{users}_tpl"
    copies = [f"igny8ctl_bench_migrate_{users}_naive", f"igny8ctl_bench_migrate_{users}_tool"]
    workload = Workload("users", users)
    try:
        started = time.perf_counter()
        build_users(template, users)
        naive_url, tool_url = (copy(template, name) for name in copies)
        print(f"\nnot-null, {users:,} users (built in {time.perf_counter() - started:.0f} s)")
        outcomes = (
            under_load("naive ALTER … SET NOT NULL", naive_url, workload, fsync,
                       lambda: run_sql(naive_url, NAIVE_NOT_NULL) or ""),
            under_load("igny8ctl migrate apply", tool_url, workload, fsync,
                       lambda: igny8ctl("migrate", "apply", "--to", "account-not-null",
                                        "--database-url", tool_url)))
    finally:
        for name in (*copies, template):
            drop_database(name)
    report("not-null", outcomes)
    return outcomes


# -- tenant keys ---------------------------------------------------------------------------


def build_tenants(template: str, keywords: int) -> int:
    """Accounts with an owner and a site each, clusters and keywords all inside their tenant;
    the first revision applied. Returns the cluster count."""
    clusters = max(keywords // KEYWORDS_PER_CLUSTER, 2 * ACCOUNTS)
    database_url = create_database(template)
    run_sql(
        database_url,
        "SET session_replication_role = replica",  # bulk load: Django's keys hold by design
        *tenants_sql(ACCOUNTS),
        f"INSERT INTO {USER} (password, is_superuser, username, first_name, last_name, email, "
        "is_staff, is_active, date_joined, role, account_id) SELECT '!', false, 'owner' || n, "
        f"'', '', '', false, true, now(), 'owner', n FROM generate_series(1, {ACCOUNTS}) n",
        f"UPDATE {ACCOUNT} SET owner_id = id",
        f"INSERT INTO {SITE} (name, domain, is_active, created_at, account_id) SELECT "
        f"'site ' || n, 'site' || n || '.example', true, now(), n "
        f"FROM generate_series(1, {ACCOUNTS}) n",
        f"INSERT INTO {CLUSTER} (name, description, keywords_count, volume, status, created_at, "
        f"updated_at, account_id, site_id) SELECT 'cluster ' || n, '', 0, 0, 'active', now(), "
        f"now(), 1 + n % {ACCOUNTS}, 1 + n % {ACCOUNTS} FROM generate_series(1, {clusters}) n",
        f"INSERT INTO {KEYWORD} (keyword, volume, difficulty, intent, status, created_at, "
        "updated_at, account_id, cluster_id, site_id) SELECT 'keyword ' || k, k % 1000, 1, "
        f"'informational', 'clustered', now(), now(), 1 + (1 + k % {clusters}) % {ACCOUNTS}, "
        f"1 + k % {clusters}, 1 + (1 + k % {clusters}) % {ACCOUNTS} "
        f"FROM generate_series(1, {keywords}) k",
        "VACUUM ANALYZE",
    )
    igny8ctl("migrate", "apply", "--to", "account-not-null", "--database-url", database_url)
    return clusters


def naive_tenant_keys(database_url: str) -> str:
    """What one would write by hand: plain unique indexes, then validated foreign keys."""
    statements = []
    for link in {link.parent: link for link in LINKS}.values():
        columns = ", ".join(quote(c) for c in link.parent_columns)
        statements.append(f"CREATE UNIQUE INDEX {quote(unique_name(link))} ON "
                          f"{quote(link.parent)} ({columns})")
    for link in LINKS:
        statements.append(
            f"ALTER TABLE {quote(link.child)} ADD CONSTRAINT {quote(key_name(link))} FOREIGN KEY "
            f"({', '.join(quote(c) for c in link.columns)}) REFERENCES {quote(link.parent)} "
            f"({', '.join(quote(c) for c in link.parent_columns)}) MATCH SIMPLE DEFERRABLE "
            "INITIALLY DEFERRED")
    timings = []
    with psycopg.connect(database_url, autocommit=True) as connection:
        for statement in statements:
            started = time.perf_counter()
            connection.execute(statement)  # type: ignore[arg-type]
            timings.append(f"{statement.split(' ON ')[0].split(' FOREIGN')[0][:60]} "
                           f"{(time.perf_counter() - started) * 1000:.0f} ms")
    return "; ".join(timings)


def measure_tenant_keys(keywords: int, fsync: bool) -> tuple[Outcome, Outcome]:
    template = f"igny8ctl_bench_keys_{keywords}_tpl"
    copies = [f"igny8ctl_bench_keys_{keywords}_naive", f"igny8ctl_bench_keys_{keywords}_tool"]
    try:
        started = time.perf_counter()
        clusters = build_tenants(template, keywords)
        naive_url, tool_url = (copy(template, name) for name in copies)
        print(f"\ntenant-keys, {keywords:,} keywords, {clusters:,} clusters, {ACCOUNTS:,} "
              f"tenants (built in {time.perf_counter() - started:.0f} s)")
        workload = Workload("tenant", keywords, clusters)
        naive = under_load("naive UNIQUE INDEX + ADD FOREIGN KEY", naive_url, workload, fsync,
                           lambda: naive_tenant_keys(naive_url))
        print(f"  naive: {naive.detail}")
        ours = under_load("igny8ctl migrate apply", tool_url, workload, fsync,
                          lambda: igny8ctl("migrate", "apply", "--database-url", tool_url))
    finally:
        for name in (*copies, template):
            drop_database(name)
    report("tenant-keys", (naive, ours))
    return naive, ours


# -- the Django step -----------------------------------------------------------------------


class Django:
    """A copy of the test project, run with ``manage.py`` against one database."""

    def __init__(self, directory: Path, database_url: str) -> None:
        self.directory = directory
        self.database_url = database_url

    def manage(self, *args: str) -> str:
        env = {**os.environ, "IGNY8_DJANGO_DATABASE_URL": self.database_url,
               "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=self.directory,
                              env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"manage.py {' '.join(args)}: {done.stderr.strip()[-500:]}")
        return done.stdout


def measure_django(users: int, fsync: bool) -> tuple[Outcome, Outcome, Outcome]:
    template = f"igny8ctl_bench_django_{users}_tpl"
    copies = [f"igny8ctl_bench_django_{users}_plain", f"igny8ctl_bench_django_{users}_state"]
    workload = Workload("users", users)
    work = Path(tempfile.mkdtemp(prefix="igny8ctl-bench-django-"))
    try:
        started = time.perf_counter()
        build_users(template, users)
        igny8ctl("migrate", "apply", "--to", "account-not-null", "--database-url", url(template))
        shutil.copytree(DJANGO_PROJECT, work / "plain",
                        ignore=shutil.ignore_patterns("__pycache__"))
        setup = Django(work / "plain", url(template))
        setup.manage("migrate", "--fake", "-v0")
        setup.manage("migrate", "-v0")  # post_migrate's content types and permissions, now
        model = setup.directory / "igny8_core/auth/models.py"
        model.write_text(model.read_text().replace(
            NULLABLE, NULLABLE.replace("null=True, blank=True", "null=False, blank=False")))
        setup.manage("makemigrations", "igny8_core_auth", "--noinput", "--name",
                     "user_account_required")
        shutil.copytree(work / "plain", work / "state")
        igny8ctl("migrate", "django-state", str(work / "state" / MIGRATION), "--database-url",
                 url(template))
        plain_url, state_url = (copy(template, name) for name in copies)
        print(f"\ndjango step, {users:,} users (built in {time.perf_counter() - started:.0f} s)")
        plain, state = Django(work / "plain", plain_url), Django(work / "state", state_url)
        idle = under_load("manage.py migrate --plan (no DDL)", state_url, workload, fsync,
                          lambda: state.manage("migrate", "--plan"))
        outcomes = (
            under_load("manage.py migrate, as makemigrations", plain_url, workload, fsync,
                       lambda: plain.manage("migrate", "-v0")),
            under_load("manage.py migrate, after django-state", state_url, workload, fsync,
                       lambda: state.manage("migrate", "-v0")))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for name in (*copies, template):
            drop_database(name)
    report("django", outcomes)
    print(f"  the same process changing nothing ({idle.label}): writer max "
          f"{idle.worst_ms:.1f} ms, p99 {idle.p99_ms:.1f} ms; after django-state / it: "
          f"{outcomes[1].worst_ms / idle.worst_ms:.2f}x")
    return (*outcomes, idle)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", default="not-null,tenant-keys,django",
                        help="sections to run (default: all three)")
    parser.add_argument("--users", default="500000,2000000",
                        help="user counts for not-null (default: 500000,2000000)")
    parser.add_argument("--keywords", default="1000000,4000000",
                        help="keyword counts for tenant-keys (default: 1000000,4000000)")
    parser.add_argument("--django-users", type=int, default=1_000_000,
                        help="users for the Django step (default: 1000000)")
    parser.add_argument("--fsync", action="store_true",
                        help="keep synchronous_commit on for the writer")
    arguments = parser.parse_args()
    only = set(arguments.only.split(","))
    print(f"writer: autocommit writes every {WRITER_PAUSE_S * 1000:.0f} ms, synchronous_commit "
          f"{'on' if arguments.fsync else 'off'}; 'max before' is its worst before the "
          "migration started (its own noise)")
    goals = []
    if "not-null" in only:
        sizes = [int(size) for size in arguments.users.split(",")]
        results = {size: measure_not_null(size, arguments.fsync) for size in sizes}
        largest = max(sizes)
        naive, ours = results[largest]
        goals.append(f"not-null: igny8ctl worst {ours.worst_ms:.1f} ms at {largest:,} users, "
                     f"{naive.worst_ms / ours.worst_ms:.0f}x below the naive ALTER "
                     f"(by size: {_by_size(results)})")
    if "tenant-keys" in only:
        sizes = [int(size) for size in arguments.keywords.split(",")]
        results = {size: measure_tenant_keys(size, arguments.fsync) for size in sizes}
        largest = max(sizes)
        naive, ours = results[largest]
        worst = max(o.worst_ms for _, o in results.values())
        goals.append(f"tenant-keys: worst stall under 50 ms at every size: {worst:.1f} ms "
                     f"{'ok' if worst < 50 else 'MISSED'}; at least 10x below naive at "
                     f"{largest:,}: {naive.worst_ms / ours.worst_ms:.0f}x "
                     f"{'ok' if naive.worst_ms >= 10 * ours.worst_ms else 'MISSED'}; "
                     f"by size: {_by_size(results)}")
    if "django" in only:
        plain, rewritten, idle = measure_django(arguments.django_users, arguments.fsync)
        noise = max(rewritten.noise_ms, idle.worst_ms)
        goals.append(f"django: rewritten {rewritten.worst_ms:.1f} ms vs the writer's own noise "
                     f"{noise:.1f} ms (before it started, or under a manage.py that changes "
                     f"nothing): {rewritten.worst_ms / noise:.2f}x "
                     f"{'ok' if rewritten.worst_ms <= NOISE_SPREAD * noise else 'ABOVE'} "
                     f"(within {NOISE_SPREAD}x, the spread of the noise itself); "
                     f"unrewritten {plain.worst_ms:.1f} ms "
                     f"({plain.worst_ms / rewritten.worst_ms:.0f}x the rewritten one)")
    print("\ngoals")
    for goal in goals:
        print(f"  {goal}")


def _by_size(results: dict[int, tuple[Outcome, Outcome]]) -> str:
    return ", ".join(f"{size:,}: igny8ctl {ours.worst_ms:.1f} ms / naive {naive.worst_ms:.0f} ms"
                     for size, (naive, ours) in sorted(results.items()))


if __name__ == "__main__":
    main()
