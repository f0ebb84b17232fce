"""The command line as an operator meets it: one-line errors, documented exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from igny8ctl.checks import REGISTRY
from tests.conftest import Result
from tests.seed import Seeder

Cli = Callable[..., Result]


def one_line_error(result: Result, code: int, *fragments: str) -> None:
    assert result.code == code, (result.code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("igny8ctl: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_no_database_configured(cli: Cli) -> None:
    one_line_error(cli("check"), 2, "no database configured", "--database-url",
                   "IGNY8_DATABASE_URL")


@pytest.mark.parametrize("url, fragment", [
    ("not a url", "malformed database URL"),
    ("mysql://root@localhost/igny8", "unsupported database URL scheme 'mysql'"),
    ("postgres://u:secret@host:notaport/db", "malformed database URL"),
    ("sqlite://", "must name a file"),
])
def test_malformed_urls(cli: Cli, url: str, fragment: str) -> None:
    result = cli("check", "--database-url", url)
    one_line_error(result, 2, fragment)
    assert "secret" not in result.stderr


def test_wrong_password_is_masked(cli: Cli, postgres_url: str) -> None:
    url = postgres_url.replace("postgres@", "no_such_role:hunter2secret@")
    result = cli("check", "--database-url", url)
    one_line_error(result, 3, "cannot connect to the database")
    assert "hunter2secret" not in result.stderr and "***" in result.stderr


def test_unreachable_host(cli: Cli) -> None:
    started = time.monotonic()
    result = cli("check", "--database-url", "postgresql://postgres:pw@127.0.0.1:1/igny8")
    one_line_error(result, 3, "cannot connect to the database", "127.0.0.1")
    assert time.monotonic() - started < 15


def test_missing_sqlite_file(cli: Cli, tmp_path: Path) -> None:
    one_line_error(cli("check", "--database-url", f"sqlite:///{tmp_path}/nope.db"), 3,
                   "does not exist")


def test_missing_table_names_the_config_key(cli: Cli, seed: Seeder, db_url: str) -> None:
    seed.execute("ALTER TABLE planner_keywords RENAME TO planner_keyword_v2")
    one_line_error(cli("check", "--database-url", db_url), 3,
                   "table planner_keywords does not exist", "tables.keyword")


def test_renamed_tables_and_columns_map_through_config(
        cli: Cli, seed: Seeder, db_url: str, tmp_path: Path) -> None:
    seed.user("orphan")
    seed.execute("ALTER TABLE planner_keywords RENAME TO kw")
    seed.execute("ALTER TABLE igny8_core_auth_user RENAME COLUMN account_id TO tenant_id")
    missing = cli("check", "--database-url", db_url, "-c", "users.orphaned")
    one_line_error(missing, 3, "has no column account_id", "columns.user.account_id")
    config = tmp_path / "igny8ctl.toml"
    config.write_text('[tables]\nkeyword = "kw"\n[columns.user]\naccount_id = "tenant_id"\n')
    result = cli("check", "--database-url", db_url, "-c", "users.*", "--format", "json")
    assert result.code == 1
    report = json.loads(result.stdout)
    assert report["checks"][0]["count"] == 1


def test_url_precedence_and_profiles(cli: Cli, sqlite_url: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/wrong")
    assert cli("check", "-c", "users.orphaned").code == 3
    monkeypatch.setenv("IGNY8_DATABASE_URL", sqlite_url)
    assert cli("check", "-c", "users.orphaned").code == 0
    (tmp_path / "igny8ctl.toml").write_text(
        '[profiles.sandbox]\ndatabase_url_env = "SANDBOX_URL"\n')
    monkeypatch.setenv("IGNY8_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/wrong")
    monkeypatch.setenv("SANDBOX_URL", sqlite_url)
    assert cli("check", "-c", "users.orphaned", "--profile", "sandbox").code == 0
    one_line_error(cli("check", "--profile", "nope"), 2, "profile 'nope'")


def test_unknown_check_is_a_usage_error(cli: Cli, sqlite_url: str) -> None:
    one_line_error(cli("check", "--database-url", sqlite_url, "-c", "users.nope"), 2,
                   "unknown check 'users.nope'")


def test_list_prints_the_catalogue(cli: Cli) -> None:
    result = cli("check", "--list")
    assert result.code == 0
    for check_id in ("users.orphaned", "tenancy.cross-tenant", "clusters.counts"):
        assert check_id in result.stdout
    catalogue = json.loads(cli("check", "--list", "--format", "json").stdout)
    assert catalogue["kind"] == "check.catalogue"
    assert {"id", "title", "severity", "rationale", "fix", "tenant_scoped"} <= set(
        catalogue["checks"][0])


@pytest.fixture
def demo_url(cli: Cli, tmp_path: Path) -> str:
    result = cli("demo", str(tmp_path / "demo.sqlite3"))
    assert result.code == 0, result.stderr
    return f"sqlite:///{tmp_path / 'demo.sqlite3'}"


def test_demo_finds_a_defect_of_every_kind(cli: Cli, demo_url: str) -> None:
    report = json.loads(cli("check", "--database-url", demo_url, "-f", "json").stdout)
    found = {check["id"]: check for check in report["checks"]}
    for check_id in ("users.orphaned", "users.dangling-account", "accounts.owner",
                     "tenancy.cross-tenant", "clusters.counts",
                     "schema.user-account-nullable"):
        assert found[check_id]["count"] > 0, check_id
    fallback = [f for f in found["ai.settings"]["findings"] if f["code"] == "fallback"]
    assert fallback[0]["count"] == 4


def test_demo_refuses_to_overwrite_other_files(cli: Cli, tmp_path: Path) -> None:
    precious = tmp_path / "precious.sqlite3"
    precious.write_text("not a demo")
    one_line_error(cli("demo", str(precious)), 2, "not an igny8ctl demo database")
    assert precious.read_text() == "not a demo"


def test_json_report_schema_and_output_file(cli: Cli, demo_url: str, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = cli("check", "--database-url", demo_url, "-f", "json", "-o", str(out))
    assert result.code == 1 and result.stdout == ""
    assert "FAIL" in result.stderr
    report = json.loads(out.read_text())
    assert report["schema_version"] == 2 and report["kind"] == "check.report"
    assert report["passed"] is False
    orphaned = report["checks"][0]
    assert orphaned["id"] == "users.orphaned"
    assert orphaned["findings"][0]["sample_ids"] == [10, 11, 12]
    assert {"duration_ms", "severity", "count", "findings"} <= set(orphaned)


def test_junit_has_one_testcase_per_check(cli: Cli, demo_url: str) -> None:
    result = cli("check", "--database-url", demo_url, "-f", "junit")
    suite = ET.fromstring(result.stdout)
    cases = suite.findall("testcase")
    assert len(cases) == len(REGISTRY)
    failures = {case.get("name"): case.find("failure") for case in cases}
    orphaned = failures["users.orphaned"]
    assert orphaned is not None and "10, 11, 12" in (orphaned.text or "")
    assert failures["clusters.counts"] is None, "warnings do not fail at --fail-on error"


def test_fail_on_and_selection(cli: Cli, demo_url: str) -> None:
    assert cli("check", "--database-url", demo_url, "-c", "clusters.counts").code == 0
    assert cli("check", "--database-url", demo_url, "-c", "clusters.counts",
               "--fail-on", "warning").code == 1
    assert cli("check", "--database-url", demo_url, "--fail-on", "never").code == 0
    assert cli("check", "--database-url", demo_url, "-x", "users.*", "-x", "accounts.*",
               "-x", "tenancy.*").code == 0


def test_baseline_fails_only_on_new_findings(cli: Cli, demo_url: str, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    cli("check", "--database-url", demo_url, "-f", "json", "-o", str(baseline))
    assert cli("check", "--database-url", demo_url, "--baseline", str(baseline)).code == 0
    seed = Seeder(demo_url)
    seed.user("new.orphan")
    seed.close()
    result = cli("check", "--database-url", demo_url, "--baseline", str(baseline))
    assert result.code == 1 and "baselined" in result.stdout
    one_line_error(cli("check", "--database-url", demo_url, "--baseline",
                       str(tmp_path / "missing.json")), 2, "cannot read baseline")


def test_console_script_help_is_fast_and_lazy() -> None:
    started = time.monotonic()
    completed = subprocess.run([sys.executable, "-m", "igny8ctl", "--help"],
                               capture_output=True, text=True, timeout=30)
    assert completed.returncode == 0 and "check" in completed.stdout
    assert time.monotonic() - started < 2
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys, igny8ctl.cli.main, igny8ctl.api; "
         "print(sorted(m for m in ('openai', 'alembic') if m in sys.modules))"],
        capture_output=True, text=True, timeout=30)
    assert probe.stdout.strip() == "[]"


def test_packaged_schema_matches_the_shared_contract() -> None:
    from tests.conftest import PACKAGED_SCHEMA, SHARED_SCHEMA

    if not SHARED_SCHEMA.exists():
        pytest.skip("shared/ is not beside this checkout")
    for name in ("postgresql.sql", "sqlite.sql"):
        assert (PACKAGED_SCHEMA / name).read_text() == (SHARED_SCHEMA / name).read_text()


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.code == 0 and result.stdout.startswith("igny8ctl ")


def test_unwritable_output_is_a_one_line_error(cli: Cli, demo_url: str, tmp_path: Path) -> None:
    one_line_error(cli("check", "--database-url", demo_url, "-f", "json", "-o",
                       str(tmp_path / "missing" / "report.json")), 2, "cannot write")


def test_password_in_the_query_string_is_masked(cli: Cli, postgres_url: str) -> None:
    result = cli("check", "--database-url", postgres_url + "?password=hunter2secret",
                 "-f", "json")
    assert ":***@" in json.loads(result.stdout)["database"]
    assert "hunter2secret" not in result.stdout + result.stderr


def test_baseline_sees_a_replaced_id_with_the_default_sample(
        cli: Cli, seed: Seeder, db_url: str, tmp_path: Path) -> None:
    seed.plan("free")
    orphans = [seed.user(f"orphan{i}") for i in range(25)]
    known = tmp_path / "known.json"
    cli("check", "--database-url", db_url, "-f", "json", "--sample", "1000", "-o", str(known))
    assert cli("check", "--database-url", db_url, "--baseline", str(known)).code == 0
    seed.execute("DELETE FROM igny8_core_auth_user WHERE id = :u", u=orphans[-1])
    seed.user("orphan.new")
    result = cli("check", "--database-url", db_url, "--baseline", str(known), "-f", "json")
    assert result.code == 1
    orphaned = json.loads(result.stdout)["checks"][0]["findings"][0]
    assert orphaned["baselined"] is False and len(orphaned["sample_ids"]) == 20
