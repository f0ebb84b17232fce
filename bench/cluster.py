"""Time ``cluster run`` on one large site against a fake OpenAI server with a fixed latency.

Builds a PostgreSQL database with one tenant whose site has 5,000 pending keywords, starts
``tests/fake_openai.py`` in its own process answering every request after 300 ms, and
runs the proposal (the real openai client, default batch size and concurrency) and then
the journaled apply. Prints the requests made, the wall time and its ratio to the ideal
``ceil(requests / concurrency) x latency``; then the peak Python memory of a proposal
(tracemalloc) at several keyword counts, and the local engine's adjusted Rand index on
the labelled keyword set.

    .venv/bin/python bench/cluster.py [--keywords 5000] [--latency-ms 300] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
import tracemalloc
import urllib.request

from common import ROOT, create_database, drop_database, run_sql

from igny8ctl.cluster.job import propose
from igny8ctl.cluster.types import ClusterRequest
from igny8ctl.cluster.writer import apply
from igny8ctl.config import Settings

DATABASE = "igny8ctl_bench_cluster"
KEY = "sk-bench-0000000000000000"
MAX_TOKENS = 4000


def seed(database_url: str, server: str, sizes: list[int]) -> None:
    """One tenant per keyword count (slug ``bench-N``), each with one site."""
    statements = [
        "INSERT INTO igny8_core_auth_plan (name, slug, monthly_credits, max_users, is_active) "
        "VALUES ('Pro', 'pro', 1, 1, true)",
    ]
    config = json.dumps({"api_key": KEY, "model": "bench-model", "base_url": server,
                         "temperature": 0.2, "max_tokens": MAX_TOKENS})
    for size in sizes:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keywords", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--memory-sizes", default="1000,5000,20000",
                        help="keyword counts for the memory scan ('' to skip)")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    memory_sizes = [int(n) for n in args.memory_sizes.split(",") if n]
    sizes = sorted({args.keywords, *memory_sizes})

    process, server = start_server(args.latency_ms)
    try:
        database_url = create_database(DATABASE)
        seed(database_url, server, sizes)
        settings = Settings(database_url=database_url)

        def request(size: int) -> ClusterRequest:
            return ClusterRequest(tenant=f"bench-{size}", concurrency=args.concurrency)

        proposals = []
        for label in ("cold: first in the process, importing openai", "warm"):
            served_before = served(server)
            started = time.perf_counter()
            proposals.append(propose(settings, request(args.keywords)))
            wall = time.perf_counter() - started
            requests = served(server) - served_before
            ideal = math.ceil(requests / args.concurrency) * args.latency_ms / 1000
            if label == "warm":
                from igny8ctl.cluster.openai_engine import default_batch_size

                print(f"keywords {args.keywords} in one site, latency {args.latency_ms:g} ms, "
                      f"concurrency {args.concurrency}, batch size "
                      f"{default_batch_size(MAX_TOKENS)}")
                print(f"requests made: {requests} (engine counted "
                      f"{proposals[-1].usage.requests}, {proposals[-1].usage.retries} retries)")
            print(f"proposal wall time ({label}): {wall:.3f} s; ideal ceil({requests}/"
                  f"{args.concurrency}) x {args.latency_ms / 1000:g} s = {ideal:.3f} s; "
                  f"ratio {wall / ideal:.3f}")

        for size in memory_sizes:
            tracemalloc.start()
            propose(settings, request(size))
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"memory: {size} keywords, peak {peak / 1024:,.0f} KiB "
                  f"({peak / size:,.0f} bytes per keyword)")

        started = time.perf_counter()
        applied = apply(settings, proposals[-1])
        print(f"apply (journaled, {applied.created} clusters, {applied.assigned} keywords): "
              f"{time.perf_counter() - started:.3f} s")
        print(f"local engine: adjusted Rand index {local_ari():.3f} on "
              "tests/fixtures/keywords_labelled.csv")
    finally:
        process.kill()
        process.wait()
        if not args.keep:
            drop_database(DATABASE)


if __name__ == "__main__":
    main()
