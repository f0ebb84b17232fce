"""Unattended operation: scheduled repair, locks, metrics, JSON logs, recorded history."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from igny8ctl import api
from igny8ctl.config import Settings
from igny8ctl.db import create_engine, job_lock
from tests.conftest import Result
from tests.seed import Seeder

Cli = Callable[..., Result]
PASSWORD = "S3cretPassw0rd-do-not-log"
API_KEY = "sk-live-THISKEYMUSTNEVERAPPEAR0001"


def seeded(seed: Seeder) -> dict[str, int]:
    """Defects the default policy repairs: orphans, a dangling user, stale counts."""
    seed.plan("free")
    system = seed.account("aws-admin")
    seed.openai_settings(system, api_key=API_KEY)
    acme = seed.account("acme")
    owner = seed.user("maya", acme, role="owner")
    seed.execute("UPDATE igny8_core_auth_account SET owner_id = :u WHERE id = :a",
                 u=owner, a=acme)
    bot = seed.user("bot", system, role="system_bot")
    seed.execute("UPDATE igny8_core_auth_account SET owner_id = :u WHERE id = :a",
                 u=bot, a=system)
    site = seed.site(acme)
    seed.cluster(acme, site, "Stale", keywords_count=3, volume=3)
    seed.user("orphan.one")
    seed.user("orphan.two")
    seed.dangling_user("ghost", account_id=4242)
    return {"acme": acme}


def with_password(url: str) -> str:
    """Trust auth ignores the password, so it can be given and must still never show."""
    return url.replace("postgres@", f"postgres:{PASSWORD}@") if "postgres@" in url else url


def test_repair_ends_clean_and_journaled(cli: Cli, seed: Seeder, db_url: str,
                                         tmp_path: Path) -> None:
    seeded(seed)
    metrics = tmp_path / "igny8ctl.prom"
    result = cli("repair", "--database-url", db_url, "--metrics-file", str(metrics))
    assert result.code == 0, result.stderr
    assert result.stdout == ""
    assert "repaired orphaned-users" in result.stderr
    jobs = sorted(run.job for run in api.fix_history(Settings(database_url=db_url)).runs)
    assert jobs == ["cluster-counts", "dangling-accounts", "orphaned-users"]

    again = cli("repair", "--database-url", db_url, "--metrics-file", str(metrics))
    assert (again.code, again.stdout, again.stderr) == (0, "", ""), "quiet when all is well"
    assert len(api.fix_history(Settings(database_url=db_url)).runs) == 3, "nothing more recorded"

    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    findings = {(s.labels["check"], s.labels["code"]): s.value
                for s in families["igny8ctl_check_findings"].samples}
    assert findings["users.orphaned", "orphaned"] == 0
    assert families["igny8ctl_last_run_success"].samples[0].value == 1
    assert families["igny8ctl_last_success_timestamp_seconds"].samples[0].value > 0


def test_concurrent_repair_exits_4_without_touching_anything(
        cli: Cli, seed: Seeder, db_url: str) -> None:
    seeded(seed)
    before = seed.dump()
    with job_lock(create_engine(Settings(database_url=db_url)), "repair"):
        result = cli("repair", "--database-url", db_url)
    assert result.code == 4 and "holds the 'repair' lock" in result.stderr
    assert seed.dump() == before


def test_metrics_file_is_replaced_atomically(cli: Cli, seed: Seeder, db_url: str,
                                            tmp_path: Path) -> None:
    seeded(seed)
    metrics = tmp_path / "igny8ctl.prom"
    metrics.write_text("# stale\n")
    reader = open(metrics)  # noqa: SIM115 - a reader holding the old file open
    old_inode = os.stat(metrics).st_ino
    cli("check", "--database-url", db_url, "--metrics-file", str(metrics))
    assert reader.read() == "# stale\n", "an open reader keeps a whole old file"
    reader.close()
    assert os.stat(metrics).st_ino != old_inode
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".igny8ctl.prom")] == []
    families = {f.name for f in text_string_to_metric_families(metrics.read_text())}
    assert {"igny8ctl_check_findings", "igny8ctl_run_duration_seconds"} <= families
    previous_success = metrics.read_text()
    assert "igny8ctl_last_run_success{job=\"check\"} 0" in previous_success


def test_json_logs_are_json_lines_without_secrets(cli: Cli, seed: Seeder, db_url: str,
                                                  tmp_path: Path) -> None:
    seeded(seed)
    url = with_password(db_url)
    config = tmp_path / "igny8ctl.toml"
    config.write_text('[repair]\norphaned-users = "create-account"\n'
                      'cluster-counts = "on"\naccount-owners = "on"\n')
    outputs = [
        cli("--log-format", "json", "repair", "--database-url", url),
        cli("--log-format", "json", "-v", "repair", "--database-url", url),
        cli("--log-format", "json", "check", "--database-url", url, "-f", "json"),
        cli("--log-format", "json", "check", "--database-url",
            "postgresql://postgres:" + PASSWORD + "@127.0.0.1:1/igny8"),
        cli("--log-format", "json", "fix", "history", "--database-url", url, "-f", "json"),
    ]
    events = []
    for output in outputs:
        assert PASSWORD not in output.stdout + output.stderr
        assert API_KEY not in output.stdout + output.stderr
        for line in output.stderr.splitlines():
            events.append(json.loads(line))
    assert {"time", "level", "event", "message"} <= set(events[0])
    applied = [e for e in events if e["event"] == "repair.applied"]
    assert applied and {"fix", "rows", "run_id"} <= set(applied[0])
    error = [e for e in events if e["event"] == "error"]
    assert error and error[0]["exit_code"] == 3 and "***" in error[0]["message"]
    runs = api.fix_history(Settings(database_url=db_url)).runs
    assert all(PASSWORD not in run.command for run in runs)


def test_history_shows_counts_of_recorded_runs(cli: Cli, seed: Seeder, db_url: str) -> None:
    seeded(seed)
    for _ in range(2):
        cli("check", "--database-url", db_url, "--record")
    seed.user("orphan.three")
    cli("check", "--database-url", db_url, "--record")
    trends = api.check_history(Settings(database_url=db_url), "users.orphaned")
    assert [count for _, count in trends.trends[0].points] == [2, 2, 3]
    table = cli("check", "history", "--database-url", db_url, "-c", "users.orphaned")
    assert table.code == 0 and "users.orphaned" in table.stdout and "▆▆█" in table.stdout
    data = json.loads(cli("check", "history", "--database-url", db_url, "-f", "json").stdout)
    assert data["kind"] == "check.history"
    assert {t["check"] for t in data["trends"]} >= {"users.orphaned", "clusters.counts"}


def test_repair_policy_from_a_profile(cli: Cli, seed: Seeder, db_url: str,
                                      tmp_path: Path) -> None:
    seeded(seed)
    (tmp_path / "igny8ctl.toml").write_text(
        f'[profiles.ops]\ndatabase_url = "{db_url}"\n'
        '[profiles.ops.repair]\norphaned-users = "off"\ncluster-counts = "on"\n')
    result = cli("repair", "--profile", "ops")
    assert result.code == 1 and "orphaned" in result.stderr
    assert seed.scalar("SELECT count(*) FROM igny8_core_auth_user WHERE account_id IS NULL") == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('[repair]\norphaned-users = "obliterate"\n')
    result = cli("repair", "--database-url", db_url, "--config", str(bad))
    assert result.code == 2 and "is not an action" in result.stderr


def test_a_failed_run_still_updates_the_metrics(cli: Cli, tmp_path: Path) -> None:
    metrics = tmp_path / "igny8ctl.prom"
    result = cli("repair", "--database-url", "postgresql://postgres@127.0.0.1:1/igny8",
                 "--metrics-file", str(metrics))
    assert result.code == 3
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    assert families["igny8ctl_last_run_success"].samples[0].value == 0
