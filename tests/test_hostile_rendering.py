"""Boundary: text from the database in every report format. Names holding Rich markup,
terminal escapes (ANSI, OSC 8), newlines or table pipes print as visible, escaped text."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from igny8ctl.render.text import printable
from tests.conftest import Result
from tests.seed import Seeder

Cli = Callable[..., Result]

HOSTILE_NAMES = [
    "notes[/]",
    "notes[bold red]x",
    "notes\x1b[31mred",
    "notes\x1b]8;;http://e.example\x07link",
    "notes\nline2",
    "notes | pipe <b>",
]
RAW = ("\x1b", "\x07", "\r")


@pytest.fixture(params=HOSTILE_NAMES, ids=lambda name: printable(name))
def hostile(request: pytest.FixtureRequest, seed: Seeder) -> str:
    """A tenant table with a hostile name and one row that crosses tenants."""
    name: str = request.param
    quoted = '"' + name.replace('"', '""') + '"'
    seed.execute(f"CREATE TABLE {quoted} (id integer PRIMARY KEY, account_id bigint NOT NULL "
                 "REFERENCES igny8_core_auth_account (id), keyword_id bigint REFERENCES "
                 "planner_keywords (id))")
    acme, other = seed.account("acme"), seed.account("other")
    theirs = seed.keyword(other, seed.site(other, "Other"), "their keyword")
    seed.execute(f"INSERT INTO {quoted} VALUES (7, :a, :k)", a=acme, k=theirs)
    return name


def no_raw_controls(text: str) -> None:
    for char in RAW:
        assert char not in text, repr(text)


def test_table(cli: Cli, db_url: str, hostile: str) -> None:
    result = cli("check", "--database-url", db_url, "-c", "tenancy.cross-tenant")
    assert result.code == 1, result.stderr
    no_raw_controls(result.stdout + result.stderr)
    assert printable(hostile).split("[")[0] in result.stdout


def test_json(cli: Cli, db_url: str, hostile: str) -> None:
    result = cli("check", "--database-url", db_url, "-c", "tenancy.cross-tenant", "-f", "json")
    assert result.code == 1
    no_raw_controls(result.stdout)
    codes = [f["code"] for c in json.loads(result.stdout)["checks"] for f in c["findings"]]
    assert f"{hostile}.keyword_id" in codes


def test_junit(cli: Cli, db_url: str, hostile: str) -> None:
    result = cli("check", "--database-url", db_url, "-c", "tenancy.cross-tenant", "-f", "junit")
    assert result.code == 1
    no_raw_controls(result.stdout)
    failure = ET.fromstring(result.stdout).find("testcase/failure")
    assert failure is not None and printable(hostile) in (failure.get("message") or "")


def test_markdown(cli: Cli, db_url: str, hostile: str) -> None:
    result = cli("check", "--database-url", db_url, "-c", "tenancy.cross-tenant",
                 "-f", "markdown")
    assert result.code == 1
    no_raw_controls(result.stdout)
    rows = [line for line in result.stdout.splitlines() if line.startswith("| `")]
    assert all(line.count(" | ") == 4 for line in rows), rows
    assert "<b>" not in result.stdout


@pytest.mark.parametrize("text, shown", [
    ("a\x1b[31mb", "a\\x1b[31mb"),
    ("line\nbreak", "line\\nbreak"),
    ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
    ("bell\x07 and del\x7f", "bell\\x07 and del\\x7f"),
    ("c1 \x9b control", "c1 \\x9b control"),
    ("plain [markup] stays", "plain [markup] stays"),
])
def test_printable(text: str, shown: str) -> None:
    assert printable(text) == shown
