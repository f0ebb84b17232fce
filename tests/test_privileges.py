"""A SELECT-only role is enough for everything that only reads (README: Security)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.conftest import PG_ADMIN, Result, pg_url
from tests.seed import Seeder

Cli = Callable[..., Result]

READ_ONLY_COMMANDS = [
    ["check"],
    ["check", "--format", "json"],
    ["check", "history"],
    ["migrate", "status"],
    ["fix", "orphaned-users", "--strategy", "create-account"],
    ["fix", "cluster-counts"],
    ["fix", "history"],
    ["cluster", "run", "--tenant", "acme", "--engine", "local"],
    ["check", "--tenant", "acme"],
    ["doctor", "user", "orphan.one"],
    ["doctor", "tenant", "acme", "--format", "json"],
]


@pytest.fixture
def reader_url(postgres_url: str) -> Iterator[str]:
    """The test database, reached as a role that may only SELECT."""
    seed = Seeder(postgres_url)
    acme = seed.account("acme")
    site = seed.site(acme, "Acme")
    for index in range(6):
        seed.keyword(acme, site, f"running shoes {index}")
    seed.user("orphan.one")
    seed.close()
    role = f"igny8ctl_reader_{os.getpid()}"
    database = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        connection.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
    yield pg_url(database).replace("//postgres@", f"//{role}@")
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"')
        connection.execute(f'REVOKE ALL ON SCHEMA public FROM "{role}"')
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=" ".join)
def test_read_only_commands_need_only_select(cli: Cli, reader_url: str,
                                             command: list[str]) -> None:
    result = cli(*command, "--database-url", reader_url)
    assert result.code in (0, 1), result.stderr


def test_a_write_without_the_privilege_is_one_line(cli: Cli, reader_url: str) -> None:
    result = cli("fix", "orphaned-users", "--strategy", "create-account", "--apply", "--yes",
                 "--database-url", reader_url)
    assert result.code == 3 and "permission denied" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
