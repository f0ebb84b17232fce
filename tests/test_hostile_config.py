"""Boundary: the configuration file. Validated against a schema, never interpolated into SQL.

Each hostile case is data; each must end as one stderr line naming the key, exit 2, before
any database is touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.seed import Seeder

Cli = Callable[..., Result]

CASES: list[tuple[str, bytes, str]] = [
    ("unknown key", b"nonsense = 1\n", "unknown key nonsense"),
    ("system_account of the wrong type", b"system_account = 5\n",
     "system_account must be a string"),
    ("database_url_env of the wrong type", b"database_url_env = 5\n",
     "database_url_env must be a string"),
    ("database_url_env not a variable name", b'database_url_env = "A B; rm -rf"\n',
     "database_url_env must name an environment variable"),
    ("timeout beyond PostgreSQL's int", b"statement_timeout_ms = 99999999999\n",
     "statement_timeout_ms must be between 0 and 2147483647"),
    ("negative timeout", b"lock_timeout_ms = -1\n", "lock_timeout_ms must be between"),
    ("infinite timeout", b"lock_timeout_ms = inf\n",
     "lock_timeout_ms must be an integer, not a non-finite number"),
    ("fractional timeout", b"statement_timeout_ms = 1.5\n",
     "statement_timeout_ms must be an integer, not a number"),
    ("boolean retries", b"lock_retries = true\n", "lock_retries must be an integer, not a boolean"),
    ("not UTF-8", b"system_account = \"\xff\xfe\"\n", "is not UTF-8 text"),
    ("not TOML", b"[tables\n", "is not valid TOML"),
    ("tables not a table", b'tables = "user"\n', "tables must be a table"),
    ("unknown logical table", b'[tables]\nwidgets = "w"\n', "unknown table tables.widgets"),
    ("empty table name", b'[tables]\nuser = ""\n', "tables.user must be a non-empty string"),
    ("NUL in a table name", b'[tables]\nuser = "a\\u0000b"\n', "tables.user must be a non-empty"),
    ("overlong table name", b'[tables]\nuser = "' + b"x" * 300 + b'"\n',
     "tables.user must be a non-empty string of at most 255"),
    ("unknown column", b'[columns.user]\nacount_id = "x"\n',
     "unknown column columns.user.acount_id"),
    ("columns of an unknown table", b'[columns.nope]\nid = "x"\n', "unknown table columns.nope"),
    ("column of the wrong type", b"[columns.user]\naccount_id = 7\n",
     "columns.user.account_id must be a string"),
    ("repair action of the wrong type", b"[repair]\norphaned-users = 5\n",
     "repair.orphaned-users must be a string"),
    ("misspelt repair action", b'[repair]\norphaned-users = "asign:acme"\n',
     "repair.orphaned-users = 'asign:acme' is not an action for this fix"),
    ("repair of an unknown fix", b'[repair]\norphan-users = "create-account"\n',
     "repair policy names unknown fix 'orphan-users'"),
    ("misspelt action in a profile not chosen",
     b'[profiles.p]\n[profiles.nightly.repair]\nempty-accounts = "delete:now"\n',
     "profiles.nightly.repair.empty-accounts = 'delete:now' is not an action"),
    ("tenant key exclusions not a list", b'[migrate]\ntenant_keys_exclude = "a.b"\n',
     "migrate.tenant_keys_exclude must be a list"),
    ("tenant key exclusion without a column", b'[migrate]\ntenant_keys_exclude = ["ab"]\n',
     "migrate.tenant_keys_exclude must be a list"),
    ("unknown migrate key", b"[migrate]\nfast = true\n", "unknown key migrate.fast"),
    ("profile with an unknown key", b"[profiles.p]\nnonsense = 1\n",
     "unknown key profiles.p.nonsense"),
    ("profile with a bad value", b"[profiles.p]\nlock_retries = -3\n",
     "profiles.p.lock_retries must be between"),
    ("nested profiles", b"[profiles.p.profiles.q]\nlock_retries = 1\n", "profiles do not nest"),
    ("profiles not a table", b'profiles = "p"\n', "profiles must be a table"),
]


@pytest.mark.parametrize("text, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_configuration_is_one_line_naming_the_key(cli: Cli, tmp_path: Path,
                                                          text: bytes, message: str) -> None:
    config = tmp_path / "igny8ctl.toml"
    config.write_bytes(text)
    database = tmp_path / "never-opened.sqlite3"
    result = cli("--log-format", "json", "check", "--config", str(config), "--profile", "p",
                 "--database-url", f"sqlite:///{database}") if b"profiles" in text else cli(
        "check", "--config", str(config), "--database-url", f"sqlite:///{database}")
    assert result.code == 2, result
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not database.exists()


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_configuration_path_that_is_not_a_file(cli: Cli, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "igny8ctl.toml"
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)
    result = cli("check", "--database-url", "sqlite:///x.db")
    assert result.code == 2 and "is not a regular file" in result.stderr


INJECTED_NAMES = [
    'igny8_core_auth_user" WHERE 1=1; DROP TABLE igny8_core_auth_plan; --',
    "igny8_core_auth_user'; DROP TABLE igny8_core_auth_plan; --",
    "igny8_core_auth_user) UNION SELECT 1 --",
]


@pytest.mark.parametrize("name", INJECTED_NAMES)
def test_mapped_names_are_never_interpolated(cli: Cli, db_url: str, seed: Seeder,
                                             tmp_path: Path, name: str) -> None:
    config = tmp_path / "igny8ctl.toml"
    config.write_text("[tables]\nuser = " + _toml_string(name) + "\n")
    result = cli("check", "--config", str(config), "--database-url", db_url)
    assert result.code == 3 and "does not exist (map it with tables.user" in result.stderr
    assert seed.scalar("SELECT count(*) FROM igny8_core_auth_plan") is not None


QUOTED_NAMES = ['we"ird users', "users; --", "users'quoted"]


@pytest.mark.parametrize("name", QUOTED_NAMES)
def test_a_real_table_whose_name_holds_quotes_is_checked(cli: Cli, db_url: str, seed: Seeder,
                                                         tmp_path: Path, name: str) -> None:
    quoted = '"' + name.replace('"', '""') + '"'
    seed.execute(f"ALTER TABLE igny8_core_auth_user RENAME TO {quoted}")
    seed.execute(f"INSERT INTO {quoted} (password, is_superuser, username, first_name, "
                 "last_name, email, is_staff, is_active, date_joined, role) VALUES ('!', "
                 "false, 'orphan', '', '', 'o@example.com', false, true, "
                 "'2025-12-10 09:00:00', 'editor')")
    config = tmp_path / "igny8ctl.toml"
    config.write_text("[tables]\nuser = " + _toml_string(name) + "\n")
    result = cli("check", "--config", str(config), "--database-url", db_url, "-f", "json",
                 "-c", "users.*", "-c", "schema.*")
    assert result.code == 1, result.stderr
    assert '"code": "orphaned"' in result.stdout and '"count": 1' in result.stdout


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
