"""Boundary: where API keys go. Each tenant's settings row names its own server (a fake
OpenAI on 127.0.0.1 that records the key it was sent); the real openai client runs, on
PostgreSQL and SQLite. A key reaches only the server its owner chose: an operator's key
(``--api-key``, ``IGNY8CTL_OPENAI_API_KEY``) never a row's ``base_url``, a row's key
never another server; plain http only to loopback unless ``--allow-insecure-base-url``;
credentials in a base URL never printed; two system accounts make the fallback ambiguous."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Result
from tests.fake_openai import FakeOpenAI, Reply
from tests.seed import Seeder

Cli = Callable[..., Result]

SYSTEM_KEY = "sk-system-ROUTE-1f4e8a2b"
ACME_KEY = "sk-acme-ROUTE-9c3d7e5a"
OTHER_KEY = "sk-other-ROUTE-6b2a4f8c"
OPERATOR_KEY = "sk-operator-ROUTE-3e7c1d9b"
KEYS = (SYSTEM_KEY, ACME_KEY, OTHER_KEY, OPERATOR_KEY)
URL_PASSWORD = "URLPASS-5d8e2c"
BASIC = "Basic " + base64.b64encode(f"u:{URL_PASSWORD}".encode()).decode()
"""Credentials in the URL are the client's Basic auth: the server's owner put them there."""
SERVERS = ("system", "acme", "other", "operator")


@dataclass
class Keys:
    seed: Seeder
    url: str
    servers: dict[str, FakeOpenAI]
    accounts: dict[str, int]

    def server_url(self, name: str) -> str:
        return self.servers[name].url

    def settings(self, account: str, api_key: str, base_url: str | None) -> None:
        self.seed.execute("DELETE FROM system_integrationsettings WHERE account_id = :a",
                          a=self.accounts[account])
        config: dict[str, Any] = {} if base_url is None else {"base_url": base_url}
        self.seed.openai_settings(self.accounts[account], api_key=api_key, **config)

    def drop_settings(self, account: str) -> None:
        self.seed.execute("DELETE FROM system_integrationsettings WHERE account_id = :a",
                          a=self.accounts[account])

    def received(self) -> dict[str, set[str]]:
        return {name: {r.headers.get("authorization", "") for r in server.requests}
                for name, server in self.servers.items()}


@pytest.fixture
def keys(db_url: str, seed: Seeder) -> Iterator[Keys]:
    servers = {name: FakeOpenAI().start() for name in SERVERS}
    try:
        accounts = {slug: seed.account(slug) for slug in ("aws-admin", "acme", "other")}
        world = Keys(seed, db_url, servers, {"system": accounts["aws-admin"], **accounts})
        for account, key in (("system", SYSTEM_KEY), ("acme", ACME_KEY), ("other", OTHER_KEY)):
            world.settings(account, key, servers[account].url)
        for account in ("acme", "other"):
            site = seed.site(world.accounts[account], account.title())
            for text in ("seo tools", "seo audit", "seo checklist", "rank tracker",
                         "rank checker"):
                seed.keyword(world.accounts[account], site, text)
        yield world
    finally:
        for server in servers.values():
            server.stop()


def allow_duplicate_slugs(seed: Seeder) -> None:
    """Recreate the incident: the account slug's unique constraint dropped by hand."""
    if seed.dialect == "postgresql":
        seed.execute("ALTER TABLE igny8_core_auth_account "
                     "DROP CONSTRAINT igny8_core_auth_account_slug_key")
        return
    with seed.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
        ddl = str(connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'igny8_core_auth_account'").scalar())
        connection.exec_driver_sql(ddl.replace('"igny8_core_auth_account"', '"account_copy"')
                                   .replace('"slug" varchar(50) NOT NULL UNIQUE',
                                            '"slug" varchar(50) NOT NULL'))
        connection.exec_driver_sql("INSERT INTO account_copy SELECT * FROM "
                                   "igny8_core_auth_account")
        connection.exec_driver_sql("DROP TABLE igny8_core_auth_account")
        connection.exec_driver_sql("ALTER TABLE account_copy RENAME TO igny8_core_auth_account")
        connection.commit()


def second_system_account(keys: Keys) -> None:
    keys.drop_settings("acme")
    allow_duplicate_slugs(keys.seed)
    keys.seed.account("aws-admin", name="Impostor")


def insecure(keys: Keys) -> None:
    """acme's server as plain http to a host igny8ctl cannot tell is loopback."""
    port = keys.server_url("acme").rsplit(":", 1)[1]
    keys.settings("acme", ACME_KEY, f"http://[::ffff:127.0.0.1]:{port}")


def credentials_in_url(keys: Keys) -> None:
    keys.settings("acme", ACME_KEY,
                  keys.server_url("acme").replace("http://", f"http://u:{URL_PASSWORD}@"))
    keys.servers["acme"].push(*[Reply(status=503, headers={"retry-after-ms": "1"})] * 2)


def bearer(key: str) -> str:
    return f"Bearer {key}"


Setup = Callable[[Keys], None] | None

#: (case, setup, flags ({name} is that server's URL), environment, exit code,
#:  the Authorization each server must have received (none listed: nothing), output fragment).
CASES: list[tuple[str, Setup, list[str], dict[str, str], int, dict[str, str], str]] = [
    ("a tenant's key to its own server", None, [], {}, 0, {"acme": bearer(ACME_KEY)},
     "tenant acme's openai settings"),
    ("the system key to the system server", lambda k: k.drop_settings("acme"), [], {}, 0,
     {"system": bearer(SYSTEM_KEY)}, "system account aws-admin's openai settings (fallback"),
    ("--api-key never to the tenant's base_url", None, ["--api-key", OPERATOR_KEY], {}, 2,
     {}, "refusing to send the API key from --api-key to the base_url of openai settings"),
    ("IGNY8CTL_OPENAI_API_KEY never to the tenant's base_url", None, [],
     {"IGNY8CTL_OPENAI_API_KEY": OPERATOR_KEY}, 2, {},
     "refusing to send the API key from IGNY8CTL_OPENAI_API_KEY"),
    ("--api-key never to the system row's base_url", lambda k: k.drop_settings("acme"),
     ["--api-key", OPERATOR_KEY], {}, 2, {}, "of account aws-admin"),
    ("--api-key to the operator's --base-url", None,
     ["--api-key", OPERATOR_KEY, "--base-url", "{operator}"], {}, 0,
     {"operator": bearer(OPERATOR_KEY)}, "API key from --api-key"),
    ("IGNY8CTL_OPENAI_API_KEY to the operator's --base-url", None,
     ["--base-url", "{operator}"], {"IGNY8CTL_OPENAI_API_KEY": OPERATOR_KEY}, 0,
     {"operator": bearer(OPERATOR_KEY)}, "API key from IGNY8CTL_OPENAI_API_KEY"),
    ("a tenant's key never to --base-url", None, ["--base-url", "{operator}"], {}, 2, {},
     "a settings row's key goes only to that row's server"),
    ("a tenant's key never to another tenant's server", None, ["--base-url", "{other}"], {},
     2, {}, "a settings row's key goes only to that row's server"),
    ("a tenant's key to --base-url naming its own server", None, ["--base-url", "{acme}"],
     {}, 0, {"acme": bearer(ACME_KEY)}, "tenant acme's openai settings"),
    ("plain http to a host not known as loopback", insecure, [], {}, 2, {},
     "refusing to send an API key in clear text"),
    ("plain http allowed by the operator", insecure, ["--allow-insecure-base-url"], {}, 0,
     {"acme": bearer(ACME_KEY)}, "tenant acme's openai settings"),
    ("plain http --base-url to a host not known as loopback", None,
     ["--api-key", OPERATOR_KEY, "--base-url", "http://vm.example.invalid/v1"], {}, 2, {},
     "refusing to send an API key in clear text"),
    ("credentials in a base URL are masked", credentials_in_url, ["--max-retries", "1"], {},
     3, {"acme": BASIC}, "u:***@127.0.0.1"),
    ("two system accounts: the fallback is ambiguous", second_system_account, [], {}, 2, {},
     "2 accounts have the system slug 'aws-admin'"),
]


@pytest.mark.parametrize("setup, flags, env, code, expected, fragment",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_keys_go_only_where_their_owner_sent_them(
        cli: Cli, keys: Keys, monkeypatch: pytest.MonkeyPatch, setup: Setup, flags: list[str],
        env: dict[str, str], code: int, expected: dict[str, str], fragment: str) -> None:
    if setup is not None:
        setup(keys)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    urls = {name: keys.server_url(name) for name in SERVERS}
    result = cli("cluster", "run", "--tenant", "acme", "--database-url", keys.url,
                 *(flag.format(**urls) for flag in flags))
    assert result.code == code, result.stderr
    assert fragment in (result.stdout if code == 0 else result.stderr)
    if code:
        assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert keys.received() == {name: {expected[name]} if name in expected else set()
                               for name in SERVERS}
    for secret in (*KEYS, URL_PASSWORD):
        assert secret not in result.stdout + result.stderr


def test_two_system_accounts_are_an_error_in_check(cli: Cli, keys: Keys) -> None:
    second_system_account(keys)
    result = cli("check", "--check", "ai.settings", "--format", "json",
                 "--database-url", keys.url)
    assert result.code == 1, result.stderr
    findings = {f["code"]: f for c in json.loads(result.stdout)["checks"]
                for f in c["findings"]}
    ambiguous = findings["system-account-ambiguous"]
    assert (ambiguous["severity"], ambiguous["count"]) == ("error", 2)
