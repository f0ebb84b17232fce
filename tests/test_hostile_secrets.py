"""Boundary: secrets. A database password in any form an operator can type is masked from
the URL's parsed structure, in the report, in errors, in the JSON error object and in the
event log; it never reaches output."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from igny8ctl.redact import mask_url, split_url
from tests.conftest import Result

Cli = Callable[..., Result]

#: (form, password as typed, how it appears in the URL).
FORMS = [
    ("unencoded slash", "pa/ss-S3CRET1", "pa/ss-S3CRET1"),
    ("unencoded at", "p@ss-S3CRET2", "p@ss-S3CRET2"),
    ("space", "p ss S3CRET3", "p ss S3CRET3"),
    ("unencoded percent", "p%ss-S3CRET4", "p%ss-S3CRET4"),
    ("hash", "p#ss-S3CRET5", "p#ss-S3CRET5"),
    ("question mark", "p?ss-S3CRET6", "p?ss-S3CRET6"),
    ("percent-encoded", "p@ss:S3CRET7", "p%40ss%3AS3CRET7"),
]


def _url(database: str, password_in_url: str) -> str:
    return f"postgresql://postgres:{password_in_url}@127.0.0.1:5432/{database}"


def _hidden(secret: str, *texts: str) -> None:
    for text in texts:
        for fragment in {secret, secret.split("-")[-1].split(" ")[-1].split(":")[-1]}:
            assert fragment not in text, (fragment, text)


@pytest.mark.parametrize("password, in_url", [f[1:] for f in FORMS], ids=[f[0] for f in FORMS])
def test_password_forms_are_parsed_as_typed(password: str, in_url: str) -> None:
    parts = split_url(_url("igny8", in_url))
    assert parts is not None and parts.password == password
    assert parts.hostport == "127.0.0.1:5432" and parts.path == "/igny8"
    assert "***" in mask_url(_url("igny8", in_url))


@pytest.mark.parametrize("password, in_url", [f[1:] for f in FORMS], ids=[f[0] for f in FORMS])
def test_password_forms_never_reach_output(cli: Cli, postgres_url: str, password: str,
                                           in_url: str) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    ok = cli("--log-format", "json", "check", "--database-url", _url(database, in_url),
             "-f", "json", "-c", "users.orphaned")
    assert ok.code == 0, ok.stderr
    assert json.loads(ok.stdout)["database"].startswith("postgresql+psycopg://postgres:***@")
    missing = cli("--log-format", "json", "check", "--database-url",
                  _url("no_such_database_x", in_url), "-f", "json")
    assert missing.code == 3
    error = json.loads(missing.stdout)
    assert error["kind"] == "error" and error["error"]["exit_code"] == 3
    event = json.loads(missing.stderr.strip().splitlines()[-1])
    assert event["level"] == "error" and "no_such_database_x" in event["message"]
    _hidden(password, ok.stdout, ok.stderr, missing.stdout, missing.stderr)


@pytest.mark.parametrize("url", [
    "postgresql://postgres:S3CRET8@127.0.0.1:notaport/igny8",
    "postgresql://postgres:S3CRET8@127.0.0.1:99999/igny8",
    "postgresql://postgres:S3CRET8@[::1/igny8",
    "mysql://root:S3CRET8@127.0.0.1/igny8",
    "S3CRET8-not-a-url",
])
def test_urls_that_fail_to_parse_are_masked(cli: Cli, url: str) -> None:
    result = cli("check", "--database-url", url)
    assert result.code == 2 and result.stderr.startswith("igny8ctl: error: ")
    _hidden("S3CRET8", result.stdout, result.stderr)


def test_query_string_passwords(cli: Cli, postgres_url: str) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_db?password=S3CRET9&sslpassword=S3CRETA"
    result = cli("check", "--database-url", missing)
    assert result.code == 3
    _hidden("S3CRET9", result.stderr)
    _hidden("S3CRETA", result.stderr)
