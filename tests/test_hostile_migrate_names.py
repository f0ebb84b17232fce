"""Names from the mapping are data: quoted in every statement, escaped in every script and
file, printed safely, whatever they hold. Each hostile name is a case of the same tests."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from igny8ctl.config import Settings
from igny8ctl.errors import ExitCode
from igny8ctl.migrations import ACCOUNT_NOT_NULL, TENANT_KEYS, runner
from tests.conftest import Result
from tests.migrate_support import USER
from tests.seed import Seeder

#: A matrix of hostile names, each migrated on both databases: in the slow set
#: (`pytest -m slow`), which CI runs beside the README's command.
pytestmark = pytest.mark.slow

Cli = Callable[..., Result]
KEYWORD = "planner_keywords"

#: Column names an installation could (or an attacker would) map; each ≤ 63 bytes.
HOSTILE = [
    pytest.param('acct "id"', id="double-quotes"),
    pytest.param("it's", id="single-quote"),
    pytest.param("new\nline", id="newline"),
    pytest.param('tri"""ple', id="triple-quotes"),
    pytest.param("back\\slash\\N", id="backslashes"),
    pytest.param("$igny8ctl$; DROP TABLE x; --", id="dollar-tag"),
    pytest.param("100% ?%s", id="placeholders"),
    pytest.param("[red]x[/] \x1b[2J", id="markup-and-escape"),
    pytest.param("ünï☃", id="unicode"),
]


def rename(seed: Seeder, table: str, column: str, new: str) -> None:
    quoted = '"' + new.replace('"', '""') + '"'
    with seed.engine.begin() as connection:
        connection.exec_driver_sql(f'ALTER TABLE "{table}" RENAME COLUMN "{column}" TO {quoted}',
                                   execution_options={"no_parameters": True})


def hostile_settings(url: str | None, account: str, cluster: str) -> Settings:
    return Settings(database_url=url, columns={"user": {"account_id": account},
                                               "keyword": {"cluster_id": cluster}})


def config_file(path: Path, account: str, cluster: str) -> Path:
    path.write_text("[columns.user]\naccount_id = " + json.dumps(account) + "\n"
                    "[columns.keyword]\ncluster_id = " + json.dumps(cluster) + "\n")
    return path


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_column_migrates_and_reruns(db_url: str, seed: Seeder, cli: Cli,
                                              tmp_path: Path, name: str) -> None:
    account = seed.account("acme")
    seed.user("maya", account)
    site = seed.site(account)
    cluster = seed.cluster(account, site, "shoes")
    seed.keyword(account, site, "red shoes", cluster=cluster)
    account_column, cluster_column = f"{name} a", f"{name} c"
    rename(seed, USER, "account_id", account_column)
    rename(seed, KEYWORD, "cluster_id", cluster_column)
    config = str(config_file(tmp_path / "igny8ctl.toml", account_column, cluster_column))

    first = cli("migrate", "apply", "--database-url", db_url, "--config", config)
    again = cli("migrate", "apply", "--database-url", db_url, "--config", config)
    status = cli("migrate", "status", "--database-url", db_url, "--config", config)

    assert first.code == 0, first.stderr
    assert again.code == 0 and "nothing to do" in again.stdout
    assert status.code == 0 and "\x1b" not in status.stdout
    document = json.loads(cli("migrate", "status", "--database-url", db_url, "--config", config,
                              "-f", "json").stdout)
    assert document["column"] == account_column and document["enforced"]
    assert document["current"] == [TENANT_KEYS]
    assert f"{KEYWORD}.{cluster_column}" in [k["link"] for k in document["tenant_keys"]]
    assert all(k["enforced"] for k in document["tenant_keys"])
    with seed.engine.begin() as connection, pytest.raises(sa.exc.IntegrityError):
        if seed.dialect == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys = ON")
        connection.exec_driver_sql(
            f"INSERT INTO {USER} (password, is_superuser, username, first_name, last_name, "
            "email, is_staff, is_active, date_joined, role) VALUES ('!', false, 'nobody', '', "
            "'', '', false, true, CURRENT_TIMESTAMP, 'editor')")


def test_hostile_names_downgrade_and_apply_again(db_url: str, seed: Seeder, cli: Cli,
                                                 tmp_path: Path) -> None:
    """Every hostile name at once, through the downgrade statements and the rebuilds."""
    names = [param.values[0] for param in HOSTILE]
    account = seed.account("acme")
    seed.user("maya", account)
    columns = {"user": {"account_id": names[0] + " a"}, "keyword": {
        "cluster_id": names[1] + " c", "site_id": names[2] + " s"},
        "cluster": {"site_id": names[3] + " s"}, "account": {"owner_id": names[4] + " o"}}
    tables = {"user": USER, "keyword": KEYWORD, "cluster": "planner_clusters",
              "account": "igny8_core_auth_account"}
    lines = []
    for logical, mapping in columns.items():
        lines.append(f"[columns.{logical}]")
        for column, new in mapping.items():
            rename(seed, tables[logical], column, new)
            lines.append(f"{column} = {json.dumps(new)}")
    config = tmp_path / "igny8ctl.toml"
    config.write_text("\n".join(lines) + "\n")
    run = ["--database-url", db_url, "--config", str(config)]

    assert cli("migrate", "apply", *run).code == 0
    for _ in range(2):
        down = cli("migrate", "downgrade", *run, "--to", "base", "--yes")
        assert down.code == 0, down.stderr
        up = cli("migrate", "apply", *run)
        assert up.code == 0, up.stderr
    document = json.loads(cli("migrate", "status", *run, "-f", "json").stdout)
    assert document["enforced"] and all(k["enforced"] for k in document["tenant_keys"])
    assert len(document["tenant_keys"]) == 4


@pytest.mark.parametrize("name", HOSTILE)
def test_the_offline_script_holds_names_quoted(postgres_url: str, name: str) -> None:
    """The script runs on a database whose columns really hold the names; no dollar-quoted
    block is ended early by a name holding its tag."""
    seed = Seeder(postgres_url)
    try:
        account_column, cluster_column = f"{name} a", f"{name} c"
        rename(seed, USER, "account_id", account_column)
        rename(seed, KEYWORD, "cluster_id", cluster_column)
        script = runner.offline_sql(hostile_settings(None, account_column, cluster_column))
        for tag, body in re.findall(r"DO (\$[^$\n]*\$)\n(.*?)\n\1", script, re.S):
            assert tag not in body
        done = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", postgres_url],
                              input=script, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        status = runner.status(hostile_settings(postgres_url, account_column, cluster_column))
        assert status.current == (TENANT_KEYS,) and status.enforced
        assert all(state.enforced for state in status.tenant_keys)
    finally:
        seed.close()


@pytest.mark.parametrize("name", HOSTILE)
def test_generate_holds_names_as_data(tmp_path: Path, cli: Cli, name: str) -> None:
    config = config_file(tmp_path / "igny8ctl.toml", name, name + "2")
    out = tmp_path / "versions"
    out.mkdir()

    result = cli("migrate", "generate", "--dir", str(out), "--config", str(config))

    assert result.code == 0, result.stderr
    for path, revision in ((out / f"{ACCOUNT_NOT_NULL}_user_account_not_null.py", ACCOUNT_NOT_NULL),
                           (out / f"{TENANT_KEYS}_tenant_keys.py", TENANT_KEYS)):
        namespace: dict[str, object] = {}
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
        assert namespace["revision"] == revision
        settings = namespace["SETTINGS"]
        assert isinstance(settings, Settings)
        assert settings.columns == {"user": {"account_id": name},
                                    "keyword": {"cluster_id": name + "2"}}
        quoted = '"' + name.replace('"', '""') + '"'
        sql = str(namespace["SQL"])
        assert quoted in sql if revision == ACCOUNT_NOT_NULL else \
            '"' + (name + "2").replace('"', '""') + '"' in sql


def test_generate_never_replaces_what_is_not_a_regular_file(tmp_path: Path, cli: Cli) -> None:
    missing = cli("migrate", "generate", "--dir", str(tmp_path / "nowhere"))
    assert missing.code == ExitCode.USAGE and "is not a directory" in missing.stderr
    fifo = tmp_path / f"{ACCOUNT_NOT_NULL}_user_account_not_null.py"
    os.mkfifo(fifo)

    refused = cli("migrate", "generate", "--dir", str(tmp_path), "--force")

    assert refused.code == ExitCode.USAGE and "a FIFO with no reader" in refused.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert len(refused.stderr.strip().splitlines()) == 1
