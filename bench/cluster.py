"""Time ``cluster run`` against a fake OpenAI server with a fixed latency, and measure its
peak memory as the tenant grows.

Builds a PostgreSQL database with one tenant per keyword count (one site each, every
keyword pending) and starts ``tests/fake_openai.py`` twice in their own processes on
127.0.0.1: one answering after ``--latency-ms`` for the timing, one at once for the
memory scan. Prints, each against its baseline measured in the same run:

- cold ``cluster run`` of ``--keywords`` keywords (the real openai client, default batch
  size and concurrency): the first proposal in a fresh process (importing openai), a warm
  one, and the whole ``igny8ctl cluster run`` process, each as a ratio to the ideal
  ``ceil(requests / concurrency) x latency`` (goal: cold <= 1.25x);
- peak Python memory of a proposal (tracemalloc) at each ``--memory-sizes`` count, as a
  ratio to the smallest (goal: 200k keywords <= 1.5x the peak at 20k);
- the journaled apply, and the local engine's adjusted Rand index on the labelled set.

    .venv/bin/python bench/cluster.py [--keywords 5000] [--latency-ms 300] [--concurrency 4]
        [--memory-sizes 20000,200000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
import urllib.request

from common import IGNY8CTL, ROOT, create_database, drop_database, run_sql

from igny8ctl.cluster.job import propose
from igny8ctl.cluster.types import ClusterRequest
from igny8ctl.cluster.writer import apply
from igny8ctl.config import Settings

DATABASE = "igny8ctl_bench_cluster"
KEY = "sk-bench-0000000000000000"
MAX_TOKENS = 4000


def seed(database_url: str, servers: dict[int, str]) -> None:
    """One tenant per keyword count (slug ``bench-N``), each with one site, whose settings
    name the server it is timed against."""
    statements = [
        "INSERT INTO igny8_core_auth_plan (name, slug, monthly_credits, max_users, is_active) "
        "VALUES ('Pro', 'pro', 1, 1, true)",
    ]
    for size, server in servers.items():
        config = json.dumps({"api_key": KEY, "model": "bench-model", "base_url": server,
                             "temperature": 0.2, "max_tokens": MAX_TOKENS})
        statements += [
            f"INSERT INTO igny8_core_auth_account (name, slug, credits, status, created_at, "
            f"updated_at, plan_id) SELECT 'Bench {size}', 'bench-{size}', 0, 'active', now(), "
            f"now(), id FROM igny8_core_auth_plan",
            f"INSERT INTO system_integrationsettings (integration_type, config, is_active, "
            f"created_at, updated_at, account_id) SELECT 'openai', '{config}', true, now(), "
            f"now(), id FROM igny8_core_auth_account WHERE slug = 'bench-{size}'",
            f"INSERT INTO igny8_core_auth_site (name, domain, is_active, created_at, "
            f"account_id) SELECT 'Site', 'site{size}.example', true, now(), id "
            f"FROM igny8_core_auth_account WHERE slug = 'bench-{size}'",
            f"INSERT INTO planner_keywords (keyword, volume, difficulty, intent, status, "
            f"created_at, updated_at, account_id, cluster_id, site_id) "
            f"SELECT 'topic' || (i % 60) || ' keyword phrase number ' || i, (i * 37) % 9000, "
            f"10, 'informational', 'pending', now(), now(), s.account_id, NULL, s.id "
            f"FROM generate_series(1, {size}) i, igny8_core_auth_site s "
            f"WHERE s.domain = 'site{size}.example'",
        ]
    run_sql(database_url, *statements, transaction=True)


def start_server(latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", "--delay-ms", str(latency_ms)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def served(server: str) -> int:
    with urllib.request.urlopen(server.rsplit("/v1", 1)[0] + "/stats") as response:
        return int(json.load(response)["requests"])


def local_ari() -> float:
    sys.path.insert(0, str(ROOT))
    from igny8ctl.cluster.local_engine import cluster_keywords
    from tests.cluster_quality import adjusted_rand_index, labelled_keywords

    keywords, topics = labelled_keywords()
    label = {i: n for n, group in enumerate(cluster_keywords(keywords))
             for i in group.keyword_ids}
    ids = [k.id for k in keywords]
    return adjusted_rand_index([topics[i] for i in ids], [label[i] for i in ids])


CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
COLD = """
import json, sys, time
from igny8ctl.cluster.job import propose
from igny8ctl.cluster.types import ClusterRequest
from igny8ctl.config import Settings
started = time.perf_counter()
proposal = propose(Settings(database_url=sys.argv[1]),
                   ClusterRequest(tenant=sys.argv[2], concurrency=int(sys.argv[3])))
print(json.dumps([time.perf_counter() - started, proposal.usage.requests]))
"""


def cold_proposal(database_url: str, size: int, concurrency: int) -> tuple[float, int]:
    """Wall time and requests of the first proposal in a fresh process (openai not yet
    imported), timed inside that process."""
    done = subprocess.run([sys.executable, "-c", COLD, database_url, f"bench-{size}",
                           str(concurrency)], cwd=ROOT, check=True, capture_output=True,
                          text=True, env=CLEAN_ENV)
    wall, requests = json.loads(done.stdout)
    return float(wall), int(requests)


def ratio_line(label: str, wall: float, requests: int, concurrency: int,
               latency_ms: float) -> str:
    ideal = math.ceil(requests / concurrency) * latency_ms / 1000
    return (f"{label}: {wall:.3f} s; ideal ceil({requests}/{concurrency}) x "
            f"{latency_ms / 1000:g} s = {ideal:.3f} s; ratio {wall / ideal:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keywords", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--memory-sizes", default="20000,200000",
                        help="keyword counts for the memory scan ('' to skip)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="cold runs (each a fresh process); the median is shown")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    memory_sizes = [int(n) for n in args.memory_sizes.split(",") if n]

    slow, slow_url = start_server(args.latency_ms)
    fast, fast_url = start_server(0)
    try:
        database_url = create_database(DATABASE)
        seed(database_url, {args.keywords: slow_url} | {n: fast_url for n in memory_sizes
                                                        if n != args.keywords})
        settings = Settings(database_url=database_url)

        def request(size: int) -> ClusterRequest:
            return ClusterRequest(tenant=f"bench-{size}", concurrency=args.concurrency)

        colds = [cold_proposal(database_url, args.keywords, args.concurrency)
                 for _ in range(args.repeats)]
        wall, requests = statistics.median(c[0] for c in colds), colds[0][1]
        print(f"keywords {args.keywords} in one site, latency {args.latency_ms:g} ms, "
              f"concurrency {args.concurrency}, {requests} requests; median of "
              f"{args.repeats} runs each")
        print(ratio_line("cold proposal (first in a fresh process, importing openai)", wall,
                         requests, args.concurrency, args.latency_ms))
        propose(settings, request(args.keywords))
        served_before = served(slow_url)
        started = time.perf_counter()
        proposal = propose(settings, request(args.keywords))
        print(ratio_line("warm proposal (openai already imported)",
                         time.perf_counter() - started, served(slow_url) - served_before,
                         args.concurrency, args.latency_ms))
        command = [IGNY8CTL, "cluster", "run", "--tenant", f"bench-{args.keywords}",
                   "--concurrency", str(args.concurrency), "--format", "json",
                   "--database-url", database_url]
        walls = []
        for _ in range(args.repeats):
            served_before = served(slow_url)
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=CLEAN_ENV)
            walls.append(time.perf_counter() - started)
        print(ratio_line("whole process: igny8ctl cluster run (python start-up included)",
                         statistics.median(walls), served(slow_url) - served_before,
                         args.concurrency, args.latency_ms))

        peaks: dict[int, int] = {}
        for size in memory_sizes:
            tracemalloc.start()
            propose(settings, request(size))
            peaks[size] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            smallest = peaks[min(peaks)]
            print(f"memory: {size:,} keywords, peak {peaks[size] / 1024:,.0f} KiB "
                  f"({peaks[size] / size:,.1f} bytes per keyword); ratio to "
                  f"{min(peaks):,} keywords {peaks[size] / smallest:.3f}")

        started = time.perf_counter()
        applied = apply(settings, proposal)
        print(f"apply (journaled, {applied.created} clusters, {applied.assigned} keywords): "
              f"{time.perf_counter() - started:.3f} s")
        print(f"local engine: adjusted Rand index {local_ari():.3f} on "
              "tests/fixtures/keywords_labelled.csv")
    finally:
        for process in (slow, fast):
            process.kill()
            process.wait()
        if not args.keep:
            drop_database(DATABASE)


if __name__ == "__main__":
    main()
